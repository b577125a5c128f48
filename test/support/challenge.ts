import { randomBytes } from 'node:crypto';
import type { Challenge } from '../../shared/protocol/messages.ts';

/**
 * A challenge as the gateway issues one, for tests that play the gateway: a fresh random round
 * id and nonce, every other field as the test chooses.
 */
export function freshChallenge(
  fields: Omit<Challenge, 't' | 'round' | 'nonce'> & Partial<Challenge>,
): Challenge {
  return {
    t: 'challenge',
    round: new Uint8Array(randomBytes(16)),
    nonce: new Uint8Array(randomBytes(32)),
    ...fields,
  };
}
