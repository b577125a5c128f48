import { createCipheriv, createDecipheriv } from 'node:crypto';
import { Reader } from './bytes.ts';
import type { HashName } from './constants.ts';
import { kdfa } from './kdf.ts';

// Session-based parameter encryption with AES-CFB (TPM 2.0 Part 1 §21.3): only the data of the
// first parameter, which must be a TPM2B, is encrypted; its size stays in the clear. Key and IV
// come from KDFa(authHash, sessionValue, "CFB", nonceNewer, nonceOlder, keyBits + 128): for a
// command nonceNewer is the caller's nonce, for a response the TPM's new one.

const AES_BLOCK_BITS = 128;

export type CfbKeyBits = 128 | 192 | 256;

export interface ParameterCipher {
  hash: HashName;
  /** sessionKey || authValue of the entity the session authorises (see sessionValue). */
  key: Uint8Array;
  nonceNewer: Uint8Array;
  nonceOlder: Uint8Array;
  keyBits?: CfbKeyBits;
}

function transformFirst(
  c: ParameterCipher,
  parameters: Uint8Array,
  structure: string,
  direction: 'encrypt' | 'decrypt',
): Uint8Array {
  const keyBits = c.keyBits ?? 128;
  // The size is read with bounds checks: a parameter area whose first TPM2B overruns it is malformed.
  const r = new Reader(parameters, structure);
  const data = r.tpm2b('first parameter');
  const material = kdfa(c.hash, c.key, 'CFB', c.nonceNewer, c.nonceOlder, keyBits + AES_BLOCK_BITS);
  const key = material.subarray(0, keyBits / 8);
  const iv = material.subarray(keyBits / 8, keyBits / 8 + AES_BLOCK_BITS / 8);
  const algorithm = `aes-${keyBits}-cfb`;
  const cipher =
    direction === 'encrypt' ? createCipheriv(algorithm, key, iv) : createDecipheriv(algorithm, key, iv);
  const out = new Uint8Array(parameters);
  out.set(Buffer.concat([cipher.update(data), cipher.final()]), 2);
  return out;
}

/** The parameter area with its first TPM2B's data encrypted; the rest is copied unchanged. */
export function encryptFirstParameter(c: ParameterCipher, parameters: Uint8Array): Uint8Array {
  return transformFirst(c, parameters, 'parameters to encrypt', 'encrypt');
}

/** The parameter area with its first TPM2B's data decrypted; TpmFormatError when it has no whole TPM2B. */
export function decryptFirstParameter(c: ParameterCipher, parameters: Uint8Array): Uint8Array {
  return transformFirst(c, parameters, 'encrypted parameters', 'decrypt');
}
