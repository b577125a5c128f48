import { constants, verify } from 'node:crypto';
import { Reader, Writer } from './bytes.ts';
import { HASH_ALG, type HashName, hashName, TPM_ALG } from './constants.ts';
import { TpmFormatError } from './errors.ts';
import { curveInfo, publicKey, type TpmPublic } from './public.ts';

/** TPMT_SIGNATURE for the schemes a Vigil AK can produce. */
export type TpmSignature =
  | { type: 'ecdsa'; hash: HashName; r: Uint8Array; s: Uint8Array }
  | { type: 'rsassa'; hash: HashName; sig: Uint8Array };

const S = 'TPMT_SIGNATURE';

export function readSignature(r: Reader): TpmSignature {
  const sigAlg = r.u16('sigAlg');
  if (sigAlg !== TPM_ALG.ECDSA && sigAlg !== TPM_ALG.RSASSA) {
    throw new TpmFormatError(
      S,
      'sigAlg',
      `expected ECDSA (0x18) or RSASSA (0x14), got 0x${sigAlg.toString(16)}`,
    );
  }
  const alg = r.u16('hash');
  const hash = hashName(alg);
  if (hash === undefined) throw new TpmFormatError(S, 'hash', `unsupported hash 0x${alg.toString(16)}`);
  if (sigAlg === TPM_ALG.ECDSA) {
    return { type: 'ecdsa', hash, r: r.tpm2b('signatureR', 128), s: r.tpm2b('signatureS', 128) };
  }
  return { type: 'rsassa', hash, sig: r.tpm2b('sig', 512) };
}

export function parseSignature(bytes: Uint8Array): TpmSignature {
  const r = new Reader(bytes, S);
  const sig = readSignature(r);
  r.end();
  return sig;
}

export function marshalSignature(sig: TpmSignature): Uint8Array {
  const w = new Writer();
  if (sig.type === 'ecdsa') w.u16(TPM_ALG.ECDSA).u16(HASH_ALG[sig.hash]).tpm2b(sig.r).tpm2b(sig.s);
  else w.u16(TPM_ALG.RSASSA).u16(HASH_ALG[sig.hash]).tpm2b(sig.sig);
  return w.finish();
}

// TPM2B integers may arrive with leading zeros stripped or kept; P1363 wants exactly `size` bytes.
function fixedWidth(value: Uint8Array, size: number): Uint8Array | undefined {
  let start = 0;
  while (start < value.length - size && value[start] === 0) start++;
  const trimmed = value.subarray(start);
  if (trimmed.length > size) return undefined;
  const out = new Uint8Array(size);
  out.set(trimmed, size - trimmed.length);
  return out;
}

/**
 * Checks `sig` over `message` with `key`. False for a wrong, malformed or mismatched signature,
 * never an exception: a verifier must not let an attacker choose between "invalid" and a crash.
 * High-S ECDSA signatures (which TPMs emit) verify, as node:crypto does not enforce low-S.
 */
export function verifySignature(key: TpmPublic, message: Uint8Array, sig: TpmSignature): boolean {
  try {
    if (sig.type === 'ecdsa') {
      if (key.type !== 'ecc') return false;
      const { size } = curveInfo(key.curve);
      const r = fixedWidth(sig.r, size);
      const s = fixedWidth(sig.s, size);
      if (r === undefined || s === undefined) return false;
      const p1363 = Buffer.concat([r, s]);
      return verify(sig.hash, message, { key: publicKey(key), dsaEncoding: 'ieee-p1363' }, p1363);
    }
    if (key.type !== 'rsa') return false;
    return verify(sig.hash, message, { key: publicKey(key), padding: constants.RSA_PKCS1_PADDING }, sig.sig);
  } catch {
    return false;
  }
}
