import { digestOf } from '../digest.ts';
import { Reader, Writer } from './bytes.ts';
import { nameAlgHash } from './public.ts';

/**
 * An object's Name: nameAlg || H_nameAlg(TPMT_PUBLIC). The TPM signs this into every attestation
 * (qualifiedSigner is derived from it) and binds credentials to it, so it is computed from the exact
 * bytes received, never from a re-marshalled copy.
 */
export function objectName(publicArea: Uint8Array): Uint8Array {
  const r = new Reader(publicArea, 'TPMT_PUBLIC');
  r.u16('type');
  const nameAlg = r.u16('nameAlg');
  const hash = nameAlgHash(nameAlg, 'TPMT_PUBLIC', 'nameAlg');
  const digest = digestOf(hash, publicArea);
  return new Writer().u16(nameAlg).bytes(digest).finish();
}

/**
 * An object's qualified Name: nameAlg || H_nameAlg(QN(parent) || Name(object)), where a hierarchy's
 * qualified Name is its 4-byte handle (Part 1 §16). Equal qualified Names mean the same key under
 * the same chain of parents, so it tells whether a persisted AK really was created under this EK.
 */
export function qualifiedName(parentQualifiedName: Uint8Array, name: Uint8Array): Uint8Array {
  const r = new Reader(name, 'TPM2B_NAME');
  const nameAlg = r.u16('nameAlg');
  const hash = nameAlgHash(nameAlg, 'TPM2B_NAME', 'nameAlg');
  const digest = digestOf(hash, parentQualifiedName, name);
  return new Writer().u16(nameAlg).bytes(digest).finish();
}

/** The qualified Name of a hierarchy (TPM_RH_*): its handle. */
export function hierarchyName(handle: number): Uint8Array {
  return new Writer().u32(handle).finish();
}
