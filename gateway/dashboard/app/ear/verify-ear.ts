import { p256 } from '@noble/curves/nist.js';
import { COSE_ALG, decodeSign1, toBeSigned } from '../../../../shared/cose/sign1.ts';
import { decodeEar, type Ear } from '../../../../shared/protocol/ear.ts';
import type { RoundView } from '../../../api/views.ts';
import { fromBase64url, toBase64url } from './base64url.ts';

// A round's EAR checked here, in the browser, rather than taken from the API's JSON: the CWT is
// decoded with the project's own COSE and EAR code (shared/), its ES256 signature verified with
// @noble/curves over the COSE Sig_structure (SHA-256 prehash; lowS: false, because Node's ECDSA
// signatures are not low-S normalised) against the gateway's EAR key, and its claims compared
// with what the page shows for the round.

/** The gateway's EAR public key (GET v1/ear-key). */
export interface EarKey {
  readonly kty: string;
  readonly crv: string;
  readonly x: string;
  readonly y: string;
  readonly kid: string;
}

export type EarCheck =
  | { readonly ok: true; readonly kid: string; readonly ear: Ear; readonly mismatches: readonly string[] }
  | {
      readonly ok: false;
      readonly reason: string;
      readonly kid?: string;
      /** What the claims say, when they decode: worth showing beside a failed signature. */
      readonly ear?: Ear;
    };

function publicKeyBytes(key: EarKey): Uint8Array {
  if (key.kty !== 'EC' || key.crv !== 'P-256')
    throw new Error(`the EAR key is ${key.kty} ${key.crv}, not EC P-256`);
  const x = fromBase64url(key.x);
  const y = fromBase64url(key.y);
  if (x.length !== 32 || y.length !== 32) throw new Error('the EAR key coordinates are not 32 bytes each');
  const out = new Uint8Array(65);
  out[0] = 4;
  out.set(x, 1);
  out.set(y, 33);
  return out;
}

export function checkEar(cwt: string, key: EarKey, round: RoundView, deviceId: string): EarCheck {
  let msg: ReturnType<typeof decodeSign1>;
  try {
    msg = decodeSign1(fromBase64url(cwt));
  } catch (e) {
    return { ok: false, reason: `not a COSE_Sign1: ${(e as Error).message}` };
  }
  const kid = toBase64url(msg.kid);
  let ear: Ear | undefined;
  let claimsError = '';
  try {
    ear = decodeEar(msg.payload);
  } catch (e) {
    claimsError = (e as Error).message;
  }
  const fail = (reason: string): EarCheck => ({ ok: false, reason, kid, ...(ear && { ear }) });
  if (msg.alg !== COSE_ALG.ES256) return fail(`signed with COSE alg ${msg.alg}, not ES256 (-7)`);
  if (kid !== key.kid) return fail(`signed by key ${kid}, not the gateway's EAR key ${key.kid}`);
  let valid: boolean;
  try {
    valid = p256.verify(msg.signature, toBeSigned(msg.protectedBytes, msg.payload), publicKeyBytes(key), {
      lowS: false,
    });
  } catch (e) {
    return fail(`the signature could not be checked: ${(e as Error).message}`);
  }
  if (!valid)
    return fail(
      "the signature does not verify with the gateway's EAR key: the claims are not what it signed",
    );
  if (!ear) return fail(`the signed claims do not decode: ${claimsError}`);
  return { ok: true, kid, ear, mismatches: mismatches(ear, round, deviceId) };
}

/** Where the signed claims and the round the page shows disagree. */
function mismatches(ear: Ear, round: RoundView, deviceId: string): string[] {
  const mine = ear.submods[deviceId];
  if (!mine) return [`the EAR has no appraisal of device ${deviceId}`];
  const out: string[] = [];
  if (mine.status !== round.status) out.push(`the EAR says ${mine.status}, the page ${String(round.status)}`);
  const signed = [...(mine.codes ?? [])].join(', ');
  const shown = round.codes.join(', ');
  if (signed !== shown) out.push(`the EAR's codes are [${signed}], the page's [${shown}]`);
  return out;
}
