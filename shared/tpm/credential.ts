import { createCipheriv, createHmac } from 'node:crypto';
import { Writer } from './bytes.ts';
import { HASH_SIZE, type HashName, TPM_ALG, TPMA_OBJECT } from './constants.ts';
import { TpmFormatError } from './errors.ts';
import { kdfa } from './kdf.ts';
import { nameAlgHash, type TpmPublic } from './public.ts';
import { type SecretRandomness, shareSecret } from './secret-sharing.ts';

export interface MadeCredential {
  /** Contents of TPM2B_ID_OBJECT: TPM2B_DIGEST(integrityHMAC) || encIdentity. */
  blob: Uint8Array;
  /** Contents of TPM2B_ENCRYPTED_SECRET: the seed, encrypted to the EK. */
  secret: Uint8Array;
}

/** Fixed randomness, for reproducible tests only (see SecretRandomness). */
export type MakeCredentialRandomness = SecretRandomness;

const S = 'TPMT_PUBLIC';

function checkEk(ek: TpmPublic): { hash: HashName; symBits: number } {
  const hash = nameAlgHash(ek.nameAlg, S, 'nameAlg');
  const needs = TPMA_OBJECT.restricted | TPMA_OBJECT.decrypt;
  if ((ek.objectAttributes & needs) !== needs) {
    throw new TpmFormatError(
      S,
      'objectAttributes',
      'the key is not a restricted decryption key, so it cannot be an EK',
    );
  }
  const sym = ek.symmetric;
  if (sym === null || sym.algorithm !== TPM_ALG.AES || sym.mode !== TPM_ALG.CFB) {
    throw new TpmFormatError(S, 'symmetric', 'an EK must have an AES-CFB symmetric definition');
  }
  return { hash, symBits: sym.keyBits };
}

/**
 * TPM2_MakeCredential in software (Part 3 §12.6, Part 1 §24): wraps `credential` so that only the
 * TPM holding `ek` can recover it, and only for the object named `akName`, via ActivateCredential.
 */
export function makeCredential(
  ek: TpmPublic,
  akName: Uint8Array,
  credential: Uint8Array,
  randomness: MakeCredentialRandomness = {},
): MadeCredential {
  const { hash, symBits } = checkEk(ek);
  if (credential.length === 0 || credential.length > HASH_SIZE[hash]) {
    throw new RangeError(
      `credential of ${credential.length} bytes; it must be 1..${HASH_SIZE[hash]} bytes (the EK nameAlg digest size)`,
    );
  }
  // Part 1 §24.4: the seed is shared with the EK under the label IDENTITY.
  const { seed, secret } = shareSecret(ek, 'IDENTITY', randomness);
  const symKey = kdfa(hash, seed, 'STORAGE', akName, new Uint8Array(0), symBits);
  const cipher = createCipheriv(`aes-${symBits}-cfb`, symKey, Buffer.alloc(16));
  const encIdentity = Buffer.concat([cipher.update(new Writer().tpm2b(credential).finish()), cipher.final()]);
  const hmacKey = kdfa(hash, seed, 'INTEGRITY', new Uint8Array(0), new Uint8Array(0), HASH_SIZE[hash] * 8);
  const integrity = createHmac(hash, hmacKey).update(encIdentity).update(akName).digest();
  return { blob: new Writer().tpm2b(integrity).bytes(encIdentity).finish(), secret };
}
