import { createHash, createHmac } from 'node:crypto';
import { concat, Writer } from './bytes.ts';
import { HASH_SIZE, type HashName } from './constants.ts';
import { kdfa } from './kdf.ts';

// The arithmetic of an HMAC session (TPM 2.0 Part 1 §19.6 and §18.7): how both ends derive the
// session key, what the command and response HMACs cover, and with which nonces in which order.
// Pure functions; the session's state (handle, nonces) is kept by whoever runs the commands.

const EMPTY = new Uint8Array(0);

/**
 * sessionKey = KDFa(authHash, bind.authValue || salt, "ATH", nonceTPM, nonceCaller, digest bits)
 * with the nonces of TPM2_StartAuthSession (Part 1 §19.6.8). A session neither bound nor salted
 * has no key: its HMACs would be keyed by authValues alone, which is why Vigil always salts.
 */
export function sessionKey(
  hash: HashName,
  salt: Uint8Array,
  nonceTPM: Uint8Array,
  nonceCaller: Uint8Array,
  bindAuthValue: Uint8Array = EMPTY,
): Uint8Array {
  const secret = concat(bindAuthValue, salt);
  if (secret.length === 0) return EMPTY;
  return kdfa(hash, secret, 'ATH', nonceTPM, nonceCaller, HASH_SIZE[hash] * 8);
}

/** An entity's authValue as it enters a key: trailing zero octets removed (Part 1 §19.6.5). */
export function trimAuthValue(authValue: Uint8Array): Uint8Array {
  let end = authValue.length;
  while (end > 0 && authValue[end - 1] === 0) end--;
  return authValue.subarray(0, end);
}

/**
 * The key of a session's HMAC and parameter encryption for one use: sessionKey || authValue of
 * the entity the session authorises (empty when it authorises nothing, e.g. audit only).
 */
export function sessionValue(key: Uint8Array, authValue: Uint8Array = EMPTY): Uint8Array {
  return concat(key, trimAuthValue(authValue));
}

/**
 * cpHash = H(commandCode || Name of each handle || parameters), over the parameters as sent
 * (encrypted, when the first one is): the TPM decrypts only after checking the HMAC.
 */
export function cpHash(
  hash: HashName,
  commandCode: number,
  names: readonly Uint8Array[],
  parameters: Uint8Array,
): Uint8Array {
  const h = createHash(hash).update(new Writer().u32(commandCode).finish());
  for (const name of names) h.update(name);
  return new Uint8Array(h.update(parameters).digest());
}

/** rpHash = H(responseCode || commandCode || parameters), parameters as received (encrypted). */
export function rpHash(
  hash: HashName,
  commandCode: number,
  parameters: Uint8Array,
  responseCode = 0,
): Uint8Array {
  return new Uint8Array(
    createHash(hash)
      .update(new Writer().u32(responseCode).u32(commandCode).finish())
      .update(parameters)
      .digest(),
  );
}

function sessionHmac(
  hash: HashName,
  key: Uint8Array,
  pHash: Uint8Array,
  nonceNewer: Uint8Array,
  nonceOlder: Uint8Array,
  extraNonces: readonly Uint8Array[],
  attributes: number,
): Uint8Array {
  const h = createHmac(hash, key).update(pHash).update(nonceNewer).update(nonceOlder);
  for (const n of extraNonces) h.update(n);
  return new Uint8Array(h.update(Uint8Array.of(attributes)).digest());
}

/**
 * The HMAC a caller puts in a command's session: HMAC(sessionValue, cpHash || nonceCaller ||
 * nonceTPM || [nonceTPM of other decrypt/encrypt sessions, first session only] || attributes).
 * `nonceTPM` is the one the TPM returned last; `nonceCaller` is fresh for this command.
 */
export function commandHmac(
  hash: HashName,
  key: Uint8Array,
  cp: Uint8Array,
  nonceCaller: Uint8Array,
  nonceTPM: Uint8Array,
  attributes: number,
  otherSessionNonces: readonly Uint8Array[] = [],
): Uint8Array {
  return sessionHmac(hash, key, cp, nonceCaller, nonceTPM, otherSessionNonces, attributes);
}

/**
 * The HMAC a TPM puts in a response's session: HMAC(sessionValue, rpHash || nonceTPM ||
 * nonceCaller || attributes), with the new nonceTPM of this response and the nonceCaller of its
 * command: a response replayed from an earlier command does not verify.
 */
export function responseHmac(
  hash: HashName,
  key: Uint8Array,
  rp: Uint8Array,
  nonceTPM: Uint8Array,
  nonceCaller: Uint8Array,
  attributes: number,
): Uint8Array {
  return sessionHmac(hash, key, rp, nonceTPM, nonceCaller, [], attributes);
}
