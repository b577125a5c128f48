import { randomFillSync } from 'node:crypto';

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
    // Node's timers run on the monotonic clock, whole milliseconds apart from Date.now()'s: about
    // one timer in five fires a millisecond before Date.now() reaches its due time. A deadline is
    // compared with now() (a round ends stale at deadlineAt, not before), so an early timer is
    // armed again for the rest.
    const due = Date.now() + ms;
    let t: ReturnType<typeof setTimeout>;
    const arm = (wait: number) => {
      t = setTimeout(
        () => {
          const left = due - Date.now();
          if (left > 0) arm(left);
          else fn();
        },
        Math.max(0, wait),
      );
      t.unref();
    };
    arm(ms);
    return { cancel: () => clearTimeout(t) };
  },
};

/** `n` random bytes. */
export type Random = (n: number) => Uint8Array;

/** Bytes drawn from the CSPRNG in blocks, each handed out once: a round needs three small draws. */
const POOL_BYTES = 4096;
const pool = Buffer.allocUnsafe(POOL_BYTES);
let used = POOL_BYTES;

export const systemRandom: Random = (n) => {
  if (n > POOL_BYTES / 4) return new Uint8Array(randomFillSync(Buffer.allocUnsafe(n)));
  if (used + n > POOL_BYTES) {
    randomFillSync(pool);
    used = 0;
  }
  const out = new Uint8Array(pool.subarray(used, used + n));
  pool.fill(0, used, used + n);
  used += n;
  return out;
};
