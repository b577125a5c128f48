import { constants, createECDH, publicEncrypt, randomBytes } from 'node:crypto';
import { Writer } from './bytes.ts';
import { HASH_SIZE, type HashName } from './constants.ts';
import { TpmFormatError } from './errors.ts';
import { kdfe } from './kdf.ts';
import { curveInfo, nameAlgHash, publicKey, type TpmPublic } from './public.ts';

/**
 * What a shared secret is for; the label keeps a seed made for one use from being accepted for
 * another (Part 1 §24, Annex B.10.3 and C.6.1): `IDENTITY` for MakeCredential, `SECRET` for the
 * salt of TPM2_StartAuthSession.
 */
export type SecretUse = 'IDENTITY' | 'SECRET';

/** Fixed randomness, for reproducible tests only. */
export interface SecretRandomness {
  /** RSA keys: the seed (nameAlg digest size). */
  seed?: Uint8Array;
  /** ECC keys: the ephemeral private scalar. */
  ephemeralPrivate?: Uint8Array;
}

export interface SharedSecret {
  /** What the caller keeps: nameAlg digest size bytes. */
  seed: Uint8Array;
  /** Contents of TPM2B_ENCRYPTED_SECRET: what the TPM recovers the seed from with the private key. */
  secret: Uint8Array;
}

const S = 'TPMT_PUBLIC';
const CURVE_NAMES: Readonly<Record<string, string>> = { 'P-256': 'prime256v1', 'P-384': 'secp384r1' };

function pad(bytes: Uint8Array, size: number): Uint8Array {
  if (bytes.length > size)
    throw new TpmFormatError(S, 'unique', `coordinate of ${bytes.length} bytes exceeds ${size}`);
  const out = new Uint8Array(size);
  out.set(bytes, size - bytes.length);
  return out;
}

/**
 * A seed only the holder of `key`'s private part can recover, hashed with `key`'s nameAlg. RSA
 * encrypts a random seed with OAEP (label = `use`); ECC derives it with one-pass Diffie-Hellman
 * from an ephemeral key whose public point becomes the secret:
 * seed = KDFe(nameAlg, Z, use, ephemeral.x, key.x).
 */
export function shareSecret(key: TpmPublic, use: SecretUse, rnd: SecretRandomness = {}): SharedSecret {
  const hash: HashName = nameAlgHash(key.nameAlg, S, 'nameAlg');
  if (key.type === 'rsa') {
    const seed = rnd.seed ?? randomBytes(HASH_SIZE[hash]);
    const secret = publicEncrypt(
      {
        key: publicKey(key),
        padding: constants.RSA_PKCS1_OAEP_PADDING,
        oaepHash: hash,
        oaepLabel: Buffer.from(`${use}\0`, 'latin1'),
      },
      seed,
    );
    return { seed: new Uint8Array(seed), secret: new Uint8Array(secret) };
  }
  const { crv, size } = curveInfo(key.curve);
  const ecdh = createECDH(CURVE_NAMES[crv]!);
  if (rnd.ephemeralPrivate !== undefined) ecdh.setPrivateKey(rnd.ephemeralPrivate);
  else ecdh.generateKeys();
  const ephemeral = ecdh.getPublicKey();
  const ex = ephemeral.subarray(1, 1 + size);
  const ey = ephemeral.subarray(1 + size);
  const kx = pad(key.unique.x, size);
  const point = Buffer.concat([Buffer.from([4]), kx, pad(key.unique.y, size)]);
  let z: Buffer;
  try {
    z = ecdh.computeSecret(point);
  } catch (err) {
    throw new TpmFormatError(S, 'unique', `the key's point is not on ${crv}: ${(err as Error).message}`);
  }
  const seed = kdfe(hash, z, use, ex, kx, HASH_SIZE[hash] * 8);
  return { seed, secret: new Writer().tpm2b(ex).tpm2b(ey).finish() };
}
