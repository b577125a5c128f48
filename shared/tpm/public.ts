import { createPublicKey, type KeyObject } from 'node:crypto';
import { Reader, Writer } from './bytes.ts';
import { hashName, TPM_ALG, TPM_ECC_CURVE } from './constants.ts';
import { TpmFormatError } from './errors.ts';

/** TPMT_SYM_DEF_OBJECT when not TPM_ALG_NULL (e.g. AES / 128 / CFB for storage keys and EKs). */
export interface SymmetricDef {
  algorithm: number;
  keyBits: number;
  mode: number;
}

/** A signing, encryption or KDF scheme with its hash, when not TPM_ALG_NULL. */
export interface HashScheme {
  scheme: number;
  hash: number;
}

interface PublicCommon {
  nameAlg: number;
  objectAttributes: number;
  authPolicy: Uint8Array;
  symmetric: SymmetricDef | null;
  scheme: HashScheme | null;
}

export interface EccPublic extends PublicCommon {
  type: 'ecc';
  curve: number;
  kdf: HashScheme | null;
  unique: { x: Uint8Array; y: Uint8Array };
}

export interface RsaPublic extends PublicCommon {
  type: 'rsa';
  keyBits: number;
  /** 0 means the default, 65537, as the TPM encodes it. */
  exponent: number;
  unique: { n: Uint8Array };
}

/** TPMT_PUBLIC for the two asymmetric key types Vigil uses. */
export type TpmPublic = EccPublic | RsaPublic;

const S = 'TPMT_PUBLIC';

function readSymmetric(r: Reader): SymmetricDef | null {
  const algorithm = r.u16('symmetric.algorithm');
  if (algorithm === TPM_ALG.NULL) return null;
  return { algorithm, keyBits: r.u16('symmetric.keyBits'), mode: r.u16('symmetric.mode') };
}

function readScheme(r: Reader, field: string): HashScheme | null {
  const scheme = r.u16(`${field}.scheme`);
  if (scheme === TPM_ALG.NULL) return null;
  if (scheme === TPM_ALG.ECDAA) {
    throw new TpmFormatError(S, field, 'ECDAA schemes are not supported; use ECDSA or a NULL scheme');
  }
  return { scheme, hash: r.u16(`${field}.hash`) };
}

function writeSymmetric(w: Writer, s: SymmetricDef | null): void {
  if (s === null) w.u16(TPM_ALG.NULL);
  else w.u16(s.algorithm).u16(s.keyBits).u16(s.mode);
}

function writeScheme(w: Writer, s: HashScheme | null): void {
  if (s === null) w.u16(TPM_ALG.NULL);
  else w.u16(s.scheme).u16(s.hash);
}

/** Reads a TPMT_PUBLIC from a reader positioned at it (for structures that embed one). */
export function readPublic(r: Reader): TpmPublic {
  const type = r.u16('type');
  const nameAlg = r.u16('nameAlg');
  const objectAttributes = r.u32('objectAttributes');
  const authPolicy = r.tpm2b('authPolicy', 64);
  const symmetric = readSymmetric(r);
  if (type === TPM_ALG.ECC) {
    const scheme = readScheme(r, 'scheme');
    const curve = r.u16('curveID');
    const kdf = readScheme(r, 'kdf');
    const x = r.tpm2b('unique.x', 128);
    const y = r.tpm2b('unique.y', 128);
    return {
      type: 'ecc',
      nameAlg,
      objectAttributes,
      authPolicy,
      symmetric,
      scheme,
      curve,
      kdf,
      unique: { x, y },
    };
  }
  if (type === TPM_ALG.RSA) {
    const scheme = readScheme(r, 'scheme');
    const keyBits = r.u16('keyBits');
    const exponent = r.u32('exponent');
    const n = r.tpm2b('unique.n', 512);
    return {
      type: 'rsa',
      nameAlg,
      objectAttributes,
      authPolicy,
      symmetric,
      scheme,
      keyBits,
      exponent,
      unique: { n },
    };
  }
  throw new TpmFormatError(
    S,
    'type',
    `expected TPM_ALG_ECC (0x23) or TPM_ALG_RSA (0x1), got 0x${type.toString(16)}`,
  );
}

/** Parses marshalled TPMT_PUBLIC (the contents of a TPM2B_PUBLIC), refusing trailing bytes. */
export function parsePublic(bytes: Uint8Array): TpmPublic {
  const r = new Reader(bytes, S);
  const p = readPublic(r);
  r.end();
  return p;
}

export function writePublic(w: Writer, p: TpmPublic): void {
  w.u16(p.type === 'ecc' ? TPM_ALG.ECC : TPM_ALG.RSA)
    .u16(p.nameAlg)
    .u32(p.objectAttributes)
    .tpm2b(p.authPolicy);
  writeSymmetric(w, p.symmetric);
  writeScheme(w, p.scheme);
  if (p.type === 'ecc') {
    w.u16(p.curve);
    writeScheme(w, p.kdf);
    w.tpm2b(p.unique.x).tpm2b(p.unique.y);
  } else {
    w.u16(p.keyBits).u32(p.exponent).tpm2b(p.unique.n);
  }
}

export function marshalPublic(p: TpmPublic): Uint8Array {
  const w = new Writer();
  writePublic(w, p);
  return w.finish();
}

const CURVES: Readonly<Record<number, { crv: string; size: number }>> = {
  [TPM_ECC_CURVE.NIST_P256]: { crv: 'P-256', size: 32 },
  [TPM_ECC_CURVE.NIST_P384]: { crv: 'P-384', size: 48 },
};

export function curveInfo(curve: number): { crv: string; size: number } {
  const info = CURVES[curve];
  if (info === undefined) {
    throw new TpmFormatError(
      S,
      'curveID',
      `unsupported curve 0x${curve.toString(16)}; expected NIST P-256 (0x3) or P-384 (0x4)`,
    );
  }
  return info;
}

function leftPad(bytes: Uint8Array, size: number, field: string): Uint8Array {
  if (bytes.length > size)
    throw new TpmFormatError(S, field, `${bytes.length} bytes, longer than the curve's ${size}`);
  const out = new Uint8Array(size);
  out.set(bytes, size - bytes.length);
  return out;
}

const b64u = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');

// Importing a key costs about as much as verifying one signature with it, and a verifier checks
// the same AK every round: keep the KeyObject as long as the parsed public area lives.
const keys = new WeakMap<TpmPublic, KeyObject>();

/** The public key as a node:crypto KeyObject; throws TpmFormatError when it is not a valid key. */
export function publicKey(p: TpmPublic): KeyObject {
  let key = keys.get(p);
  if (key === undefined) {
    key = importKey(p);
    keys.set(p, key);
  }
  return key;
}

function importKey(p: TpmPublic): KeyObject {
  try {
    if (p.type === 'ecc') {
      const { crv, size } = curveInfo(p.curve);
      const x = leftPad(p.unique.x, size, 'unique.x');
      const y = leftPad(p.unique.y, size, 'unique.y');
      return createPublicKey({ key: { kty: 'EC', crv, x: b64u(x), y: b64u(y) }, format: 'jwk' });
    }
    const e = p.exponent === 0 ? 65537 : p.exponent;
    const eBytes = Buffer.alloc(4);
    eBytes.writeUInt32BE(e);
    let start = 0;
    while (start < 3 && eBytes[start] === 0) start++;
    return createPublicKey({
      key: { kty: 'RSA', n: b64u(p.unique.n), e: b64u(eBytes.subarray(start)) },
      format: 'jwk',
    });
  } catch (err) {
    if (err instanceof TpmFormatError) throw err;
    throw new TpmFormatError(S, 'unique', `not a usable ${p.type} public key: ${(err as Error).message}`);
  }
}

/** The digest size of a TPM hash algorithm id, or a TpmFormatError naming the structure. */
export function nameAlgHash(
  alg: number,
  structure: string,
  field: string,
): NonNullable<ReturnType<typeof hashName>> {
  const name = hashName(alg);
  if (name === undefined) {
    throw new TpmFormatError(
      structure,
      field,
      `unsupported hash algorithm 0x${alg.toString(16)}; expected SHA-1/256/384/512`,
    );
  }
  return name;
}
