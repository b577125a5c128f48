import { createDecipheriv, createECDH, createHmac, timingSafeEqual } from 'node:crypto';
import { HASH_SIZE, kdfa, kdfe, Reader, TpmFormatError } from '../../../shared/tpm/index.ts';
import type { SimKeys } from './keys.ts';

// TPM2_ActivateCredential in software (Part 3 §12.5, Part 1 §24): the inverse of makeCredential
// in shared/tpm/credential.ts, for a P-256 EK with AES-128-CFB. ECDH of the EK's private scalar
// with the ephemeral point in `secret` gives Z; KDFe("IDENTITY") the seed; KDFa("INTEGRITY") the
// HMAC key that must authenticate encIdentity and the AK's Name; KDFa("STORAGE") the AES key.
// A TPM answers a failed check with TPM_RC_INTEGRITY: here an ActivationError says which.

export class ActivationError extends Error {
  override name = 'ActivationError';
}

const HASH = 'sha256' as const;
const SYM_BITS = 128;

export function simActivateCredential(keys: SimKeys, blob: Uint8Array, secret: Uint8Array): Uint8Array {
  let ex: Uint8Array;
  let ey: Uint8Array;
  let integrity: Uint8Array;
  let encIdentity: Uint8Array;
  try {
    const s = new Reader(secret, 'TPMS_ECC_POINT');
    ex = s.tpm2b('x', 32);
    ey = s.tpm2b('y', 32);
    s.end();
    const b = new Reader(blob, 'TPM2B_ID_OBJECT');
    integrity = b.tpm2b('integrityHMAC', HASH_SIZE[HASH]);
    encIdentity = b.bytes(b.remaining, 'encIdentity');
  } catch (e) {
    if (e instanceof TpmFormatError) throw new ActivationError(`credential is malformed: ${e.message}`);
    throw e;
  }
  const point = Buffer.concat([Buffer.from([4]), pad32(ex), pad32(ey)]);
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(keys.ek.d);
  let z: Buffer;
  try {
    z = ecdh.computeSecret(point);
  } catch (e) {
    throw new ActivationError(`the ephemeral point is not on P-256: ${(e as Error).message}`);
  }
  const seed = kdfe(HASH, z, 'IDENTITY', pad32(ex), keys.ek.x, HASH_SIZE[HASH] * 8);

  const hmacKey = kdfa(HASH, seed, 'INTEGRITY', new Uint8Array(0), new Uint8Array(0), HASH_SIZE[HASH] * 8);
  const expected = createHmac(HASH, hmacKey).update(encIdentity).update(keys.akName).digest();
  if (integrity.length !== expected.length || !timingSafeEqual(integrity, expected)) {
    throw new ActivationError(
      'integrity HMAC does not match: the credential was made for another EK or another AK Name',
    );
  }
  const symKey = kdfa(HASH, seed, 'STORAGE', keys.akName, new Uint8Array(0), SYM_BITS);
  const decipher = createDecipheriv(`aes-${SYM_BITS}-cfb`, symKey, Buffer.alloc(16));
  const plain = Buffer.concat([decipher.update(encIdentity), decipher.final()]);
  try {
    const r = new Reader(plain, 'TPM2B_DIGEST');
    const credential = r.tpm2b('credential', HASH_SIZE[HASH]);
    r.end();
    return new Uint8Array(credential);
  } catch (e) {
    if (e instanceof TpmFormatError) throw new ActivationError(`decrypted credential: ${e.message}`);
    throw e;
  }
}

function pad32(bytes: Uint8Array): Uint8Array {
  if (bytes.length > 32) throw new ActivationError(`coordinate of ${bytes.length} bytes exceeds 32`);
  const out = new Uint8Array(32);
  out.set(bytes, 32 - bytes.length);
  return out;
}
