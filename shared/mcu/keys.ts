import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { malformed } from '../protocol/errors.ts';

// MCU keys travel as raw P-256 points: the 65-byte uncompressed SEC1 form (0x04 || x || y), what
// a small ECC library emits and what COSE kids are computed from (shared/cose keyId).

export const P256_POINT_BYTES = 65;

/** The public key a raw point is, or `malformed` when it is not a point on P-256. */
export function p256PublicKey(point: Uint8Array, what: string): KeyObject {
  if (point.length !== P256_POINT_BYTES || point[0] !== 0x04) {
    throw malformed(
      `${what}: expected an uncompressed P-256 point (65 bytes starting 0x04), got ${point.length} byte(s)${point.length > 0 ? ` starting 0x${point[0]!.toString(16).padStart(2, '0')}` : ''}`,
    );
  }
  const b64 = (from: number) => Buffer.from(point.subarray(from, from + 32)).toString('base64url');
  try {
    return createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: b64(1), y: b64(33) }, format: 'jwk' });
  } catch (e) {
    throw malformed(`${what}: not a point on P-256 (${(e as Error).message})`);
  }
}

/** The COSE kid of a raw point: shared/cose keyId's value, without importing the key. */
export function pointKeyId(point: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(point).digest().subarray(0, 8));
}

/** How operators name an MCU: lowercase hex SHA-256 of its raw identity public key. */
export function identityHash(identityKey: Uint8Array): string {
  return createHash('sha256').update(identityKey).digest('hex');
}

const IDENTITY_HASH = /^[0-9a-f]{64}$/;
export function isIdentityHash(s: string): boolean {
  return IDENTITY_HASH.test(s);
}
