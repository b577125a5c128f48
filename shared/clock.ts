import { randomBytes } from 'node:crypto';

// Time and randomness as values passed in, so that state machines built on them (rounds,
// posture expiry, batches, rollouts) are tested with a fake clock instead of sleeps, and a
// decision can be replayed with the same inputs.

export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Unix ms. */
  now(): number;
  /**
   * Calls `fn` once, `ms` from now (at once when `ms` ≤ 0, but never synchronously). Timers never
   * keep the process alive: whoever starts a long-lived component holds it open by other means.
   */
  after(ms: number, fn: () => void): Timer;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  after(ms, fn) {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};

/** `n` random bytes. */
export type Random = (n: number) => Uint8Array;

export const systemRandom: Random = (n) => new Uint8Array(randomBytes(n));
