import { createHash, type KeyObject, sign, verify } from 'node:crypto';
import { CborError, decodeCbor } from '../cbor/decode.ts';
import { encodeCbor } from '../cbor/encode.ts';
import type { CborMap } from '../cbor/value.ts';

// COSE_Sign1 (RFC 9052 §4.2), untagged, as vigil/1 uses it three times: the EAR in `result`, the
// release manifest, and the token of an `operate` command. One signer, one algorithm per key:
// ES256 (alg -7, an IEEE P1363 r||s signature of 64 bytes) or EdDSA with Ed25519 (alg -8). The
// protected header is exactly `{1: alg, 4: kid}`; the unprotected header is an empty map; the
// payload is attached. Nothing here trusts a key: the caller says which key must have signed.

export const COSE_ALG = { ES256: -7, EdDSA: -8 } as const;
export type CoseAlg = (typeof COSE_ALG)[keyof typeof COSE_ALG];

const HEADER_ALG = 1;
const HEADER_KID = 4;
/** A kid longer than this is refused: ours are 8 bytes, and a header is no place for data. */
const MAX_KID_BYTES = 64;

/** Thrown for bytes that are not a COSE_Sign1 of the form above. */
export class CoseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CoseError';
  }
}

export interface Sign1 {
  readonly alg: CoseAlg;
  readonly kid: Uint8Array;
  /** The protected header exactly as sent: the signature covers these bytes, not a re-encoding. */
  readonly protectedBytes: Uint8Array;
  readonly payload: Uint8Array;
  readonly signature: Uint8Array;
}

/** The algorithm a key signs with, or a CoseError naming what the key is instead. */
export function algOf(key: KeyObject): CoseAlg {
  if (key.asymmetricKeyType === 'ed25519') return COSE_ALG.EdDSA;
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1')
    return COSE_ALG.ES256;
  const what =
    key.asymmetricKeyType === 'ec'
      ? `an EC key on ${key.asymmetricKeyDetails?.namedCurve}`
      : `a ${key.asymmetricKeyType} key`;
  throw new CoseError(`${what} cannot sign COSE here: use Ed25519 (EdDSA) or EC P-256 (ES256)`);
}

/**
 * The raw public key a kid is computed from: the 32-byte Ed25519 key, or the 65-byte
 * uncompressed SEC1 point of a P-256 key.
 */
export function rawPublicKey(key: KeyObject): Uint8Array {
  const alg = algOf(key);
  const jwk = key.export({ format: 'jwk' });
  const b = (s: string | undefined) => Buffer.from(s ?? '', 'base64url');
  if (alg === COSE_ALG.EdDSA) return new Uint8Array(b(jwk.x));
  return new Uint8Array(Buffer.concat([Buffer.of(4), b(jwk.x), b(jwk.y)]));
}

/** kid = the first 8 bytes of SHA-256 of the raw public key (PROTOCOL.md §6.1). */
export function keyId(key: KeyObject): Uint8Array {
  return new Uint8Array(createHash('sha256').update(rawPublicKey(key)).digest().subarray(0, 8));
}

/** Sig_structure for a COSE_Sign1 with no external AAD: what the signature covers. */
export function toBeSigned(protectedBytes: Uint8Array, payload: Uint8Array): Uint8Array {
  return encodeCbor(['Signature1', protectedBytes, new Uint8Array(0), payload]);
}

function protectedHeader(alg: CoseAlg, kid: Uint8Array): Uint8Array {
  return encodeCbor(
    new Map<number, number | Uint8Array>([
      [HEADER_ALG, alg],
      [HEADER_KID, kid],
    ]),
  );
}

/**
 * Builds a COSE_Sign1 whose signature another implementation makes: `signTbs` gets the
 * Sig_structure bytes and returns the signature (ES256: r||s over SHA-256 of them; EdDSA: over
 * them). For keys that live outside node:crypto, such as an MCU emulator's.
 */
export function assembleSign1(
  alg: CoseAlg,
  kid: Uint8Array,
  payload: Uint8Array,
  signTbs: (tbs: Uint8Array) => Uint8Array,
): Uint8Array {
  const protectedBytes = protectedHeader(alg, kid);
  const signature = signTbs(toBeSigned(protectedBytes, payload));
  return encodeCbor([protectedBytes, new Map(), payload, signature]);
}

/** Signs `payload` with a private key; kid defaults to keyId of its public key. */
export function signSign1(key: KeyObject, payload: Uint8Array, kid?: Uint8Array): Uint8Array {
  const alg = algOf(key);
  return assembleSign1(alg, kid ?? keyId(key), payload, (tbs) =>
    alg === COSE_ALG.EdDSA
      ? new Uint8Array(sign(null, tbs, key))
      : new Uint8Array(sign('sha256', tbs, { key, dsaEncoding: 'ieee-p1363' })),
  );
}

/** Parses a COSE_Sign1; checks its form, never its signature (see verifySign1). */
export function decodeSign1(bytes: Uint8Array): Sign1 {
  let outer: unknown;
  try {
    outer = decodeCbor(bytes, { maxDepth: 4 });
  } catch (e) {
    if (e instanceof CborError) throw new CoseError(`COSE_Sign1: ${e.message}`);
    throw e;
  }
  if (!Array.isArray(outer) || outer.length !== 4)
    throw new CoseError(
      'COSE_Sign1: expected an array of 4 items [protected, unprotected, payload, signature]',
    );
  const [protectedBytes, unprotected, payload, signature] = outer as unknown[];
  if (!(protectedBytes instanceof Uint8Array))
    throw new CoseError('COSE_Sign1: protected header must be a bstr');
  if (!(unprotected instanceof Map)) throw new CoseError('COSE_Sign1: unprotected header must be a map');
  if (!(payload instanceof Uint8Array))
    throw new CoseError('COSE_Sign1: payload must be an attached bstr (detached payloads are not used)');
  if (!(signature instanceof Uint8Array)) throw new CoseError('COSE_Sign1: signature must be a bstr');
  let header: unknown;
  try {
    header = decodeCbor(protectedBytes, { maxDepth: 2 });
  } catch (e) {
    if (e instanceof CborError) throw new CoseError(`COSE_Sign1 protected header: ${e.message}`);
    throw e;
  }
  if (!(header instanceof Map)) throw new CoseError('COSE_Sign1: protected header must encode a map');
  const h = header as CborMap;
  const alg = h.get(HEADER_ALG);
  if (alg !== COSE_ALG.ES256 && alg !== COSE_ALG.EdDSA)
    throw new CoseError(`COSE_Sign1: alg ${String(alg)} is not supported: expected -7 (ES256) or -8 (EdDSA)`);
  const kid = h.get(HEADER_KID);
  if (!(kid instanceof Uint8Array) || kid.length === 0 || kid.length > MAX_KID_BYTES)
    throw new CoseError(`COSE_Sign1: protected header needs a kid (label 4) of 1 to ${MAX_KID_BYTES} bytes`);
  if (alg === COSE_ALG.ES256 && signature.length !== 64)
    throw new CoseError(`COSE_Sign1: an ES256 signature is 64 bytes (r||s), got ${signature.length}`);
  if (alg === COSE_ALG.EdDSA && signature.length !== 64)
    throw new CoseError(`COSE_Sign1: an Ed25519 signature is 64 bytes, got ${signature.length}`);
  return { alg, kid, protectedBytes, payload, signature };
}

/**
 * Whether `msg` was signed by `key`: the key's algorithm must be the header's (a P-256 key never
 * verifies an EdDSA claim and the reverse), and the signature must verify over Sig_structure.
 */
export function verifySign1(msg: Sign1, key: KeyObject): boolean {
  let alg: CoseAlg;
  try {
    alg = algOf(key);
  } catch {
    return false;
  }
  if (alg !== msg.alg) return false;
  const tbs = toBeSigned(msg.protectedBytes, msg.payload);
  return alg === COSE_ALG.EdDSA
    ? verify(null, tbs, key, msg.signature)
    : verify('sha256', tbs, { key, dsaEncoding: 'ieee-p1363' }, msg.signature);
}
