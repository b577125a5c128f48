import { constants, createCipheriv, createECDH, createHmac, publicEncrypt, randomBytes } from 'node:crypto';
import { Writer } from './bytes.ts';
import { HASH_SIZE, type HashName, TPM_ALG, TPMA_OBJECT } from './constants.ts';
import { TpmFormatError } from './errors.ts';
import { kdfa, kdfe } from './kdf.ts';
import { curveInfo, nameAlgHash, publicKey, type TpmPublic } from './public.ts';

export interface MadeCredential {
  /** Contents of TPM2B_ID_OBJECT: TPM2B_DIGEST(integrityHMAC) || encIdentity. */
  blob: Uint8Array;
  /** Contents of TPM2B_ENCRYPTED_SECRET: the seed, encrypted to the EK. */
  secret: Uint8Array;
}

/** Fixed randomness, for reproducible tests only. */
export interface MakeCredentialRandomness {
  /** RSA EKs: the seed (nameAlg digest size). */
  seed?: Uint8Array;
  /** ECC EKs: the ephemeral private scalar. */
  ephemeralPrivate?: Uint8Array;
}

const S = 'TPMT_PUBLIC';
const CURVE_NAMES: Readonly<Record<string, string>> = { 'P-256': 'prime256v1', 'P-384': 'secp384r1' };

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

// Part 1 §24.4 (secret sharing by the EK): RSA encrypts a random seed with OAEP, ECC derives it
// with one-pass Diffie-Hellman from an ephemeral key whose public point becomes the secret.
function seedFor(
  ek: TpmPublic,
  hash: HashName,
  rnd: MakeCredentialRandomness,
): { seed: Uint8Array; secret: Uint8Array } {
  if (ek.type === 'rsa') {
    const seed = rnd.seed ?? randomBytes(HASH_SIZE[hash]);
    const secret = publicEncrypt(
      {
        key: publicKey(ek),
        padding: constants.RSA_PKCS1_OAEP_PADDING,
        oaepHash: hash,
        oaepLabel: Buffer.from('IDENTITY\0', 'latin1'),
      },
      seed,
    );
    return { seed, secret: new Uint8Array(secret) };
  }
  const { crv, size } = curveInfo(ek.curve);
  const ecdh = createECDH(CURVE_NAMES[crv]!);
  if (rnd.ephemeralPrivate !== undefined) ecdh.setPrivateKey(rnd.ephemeralPrivate);
  else ecdh.generateKeys();
  const ephemeral = ecdh.getPublicKey();
  const ex = ephemeral.subarray(1, 1 + size);
  const ey = ephemeral.subarray(1 + size);
  const ekPoint = Buffer.concat([Buffer.from([4]), pad(ek.unique.x, size), pad(ek.unique.y, size)]);
  let z: Buffer;
  try {
    z = ecdh.computeSecret(ekPoint);
  } catch (err) {
    throw new TpmFormatError(S, 'unique', `the EK point is not on ${crv}: ${(err as Error).message}`);
  }
  const seed = kdfe(hash, z, 'IDENTITY', ex, pad(ek.unique.x, size), HASH_SIZE[hash] * 8);
  return { seed, secret: new Writer().tpm2b(ex).tpm2b(ey).finish() };
}

function pad(bytes: Uint8Array, size: number): Uint8Array {
  if (bytes.length > size)
    throw new TpmFormatError(S, 'unique', `coordinate of ${bytes.length} bytes exceeds ${size}`);
  const out = new Uint8Array(size);
  out.set(bytes, size - bytes.length);
  return out;
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
  const { seed, secret } = seedFor(ek, hash, randomness);
  const symKey = kdfa(hash, seed, 'STORAGE', akName, new Uint8Array(0), symBits);
  const cipher = createCipheriv(`aes-${symBits}-cfb`, symKey, Buffer.alloc(16));
  const encIdentity = Buffer.concat([cipher.update(new Writer().tpm2b(credential).finish()), cipher.final()]);
  const hmacKey = kdfa(hash, seed, 'INTEGRITY', new Uint8Array(0), new Uint8Array(0), HASH_SIZE[hash] * 8);
  const integrity = createHmac(hash, hmacKey).update(encIdentity).update(akName).digest();
  return { blob: new Writer().tpm2b(integrity).bytes(encIdentity).finish(), secret };
}
