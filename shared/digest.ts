import * as crypto from 'node:crypto';

// One-shot digests of a few small inputs, the hashing the verifier does several times a round
// (binding, PCR digest, Names). node:crypto's hash() (Node 20.12 and later) skips the Hash
// object a createHash() call builds and throws away; the agent also runs on Node 18.19, where
// a Hash object does the same work.

type OneShot = (algorithm: string, data: Uint8Array, outputEncoding: 'buffer') => Buffer;
const oneShot = (crypto as unknown as { hash?: OneShot }).hash;

/** The digest of the parts concatenated, as one `algorithm` (e.g. 'sha256') hash of them all. */
export function digestOf(algorithm: string, ...parts: readonly Uint8Array[]): Buffer {
  if (oneShot) return oneShot(algorithm, parts.length === 1 ? parts[0]! : Buffer.concat(parts), 'buffer');
  const h = crypto.createHash(algorithm);
  for (const p of parts) h.update(p);
  return h.digest();
}
