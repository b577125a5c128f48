import { constants, type KeyObject, verify } from 'node:crypto';
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
 * What node:crypto's verify() takes to check `sig` over `message` with `key`: all the decisions
 * about the signature made, only the arithmetic left. Undefined when `sig` cannot be a signature
 * of `key` (another scheme, an integer wider than the curve). A verifier with a worker pool hands
 * this to a worker; `verifySignature` runs it here.
 */
export interface SignatureCheck {
  readonly algorithm: HashName;
  readonly message: Uint8Array;
  readonly key: KeyObject;
  readonly signature: Uint8Array;
  readonly dsaEncoding?: 'ieee-p1363';
  readonly padding?: number;
}

export function signatureCheck(
  key: TpmPublic,
  message: Uint8Array,
  sig: TpmSignature,
): SignatureCheck | undefined {
  if (sig.type === 'ecdsa') {
    if (key.type !== 'ecc') return undefined;
    const { size } = curveInfo(key.curve);
    const r = fixedWidth(sig.r, size);
    const s = fixedWidth(sig.s, size);
    if (r === undefined || s === undefined) return undefined;
    const p1363 = new Uint8Array(2 * size);
    p1363.set(r);
    p1363.set(s, size);
    return { algorithm: sig.hash, message, key: publicKey(key), signature: p1363, dsaEncoding: 'ieee-p1363' };
  }
  if (key.type !== 'rsa') return undefined;
  return {
    algorithm: sig.hash,
    message,
    key: publicKey(key),
    signature: sig.sig,
    padding: constants.RSA_PKCS1_PADDING,
  };
}

/** Runs a check; false, never an exception, for a signature that does not verify. */
export function runSignatureCheck(c: SignatureCheck): boolean {
  try {
    const { key, dsaEncoding, padding } = c;
    return verify(
      c.algorithm,
      c.message,
      { key, ...(dsaEncoding && { dsaEncoding }), ...(padding !== undefined && { padding }) },
      c.signature,
    );
  } catch {
    return false;
  }
}

/**
 * Checks `sig` over `message` with `key`. False for a wrong, malformed or mismatched signature,
 * never an exception: a verifier must not let an attacker choose between "invalid" and a crash.
 * High-S ECDSA signatures (which TPMs emit) verify, as node:crypto does not enforce low-S.
 */
export function verifySignature(key: TpmPublic, message: Uint8Array, sig: TpmSignature): boolean {
  try {
    const check = signatureCheck(key, message, sig);
    return check !== undefined && runSignatureCheck(check);
  } catch {
    return false;
  }
}
