import { createHash } from 'node:crypto';
import { NONCE_BYTES } from '../protocol/messages.ts';

// The MCU's challenge for one round (docs/protocol.md, MCU section). The MCU derives it itself
// from the round's nonce and its own identity key, and the gateway derives the same from the
// nonce it issued and the identity key carried: evidence of another round (another nonce) or of
// another MCU (another identity) answers another challenge, so it is refused.

const TAG = new TextEncoder().encode('vigil-mcu/1 challenge\u0000');
export const CHALLENGE_BYTES = 32;

/** SHA-256("vigil-mcu/1 challenge" || 0x00 || nonce || SHA-256(identity key)). */
export function mcuChallenge(nonce: Uint8Array, identityKey: Uint8Array): Uint8Array {
  if (nonce.length !== NONCE_BYTES) {
    throw new RangeError(`a round nonce is ${NONCE_BYTES} bytes, got ${nonce.length}`);
  }
  const id = createHash('sha256').update(identityKey).digest();
  return new Uint8Array(createHash('sha256').update(TAG).update(nonce).update(id).digest());
}
