import type { Clock, Random, Timer } from '../../shared/clock.ts';

/**
 * A clock that moves only when told: timers fire in time order (then in the order they were
 * set) as `advance` passes their due time, and a timer set while firing fires in the same advance
 * if it falls within it.
 */
export class FakeClock implements Clock {
  #now: number;
  #seq = 0;
  readonly #timers = new Map<number, { at: number; fn: () => void }>();

  constructor(start = 1_800_000_000_000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  after(ms: number, fn: () => void): Timer {
    const id = this.#seq++;
    // Whole milliseconds, as real timers and Date.now() have them.
    this.#timers.set(id, { at: this.#now + Math.max(0, Math.ceil(ms)), fn });
    return { cancel: () => this.#timers.delete(id) };
  }

  /** Timers not yet fired. */
  get pending(): number {
    return this.#timers.size;
  }

  /** Advances in steps of `step` ms until `done()` holds; throws past `limit` ms. */
  advanceUntil(done: () => boolean, limit: number, step = 100): void {
    for (let t = 0; !done(); t += step) {
      if (t > limit) throw new Error(`fake clock: condition not reached within ${limit} ms`);
      this.advance(step);
    }
  }

  advance(ms: number): void {
    const until = this.#now + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.#timers) if (e[1].at <= until && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.#timers.delete(next[0]);
      this.#now = Math.max(this.#now, next[1].at);
      next[1].fn();
    }
    this.#now = until;
  }
}

/** Deterministic bytes: a counter, so ids and nonces in a test are distinct and predictable. */
export function countingRandom(): Random {
  let n = 0;
  return (size) => {
    const out = new Uint8Array(size);
    const v = ++n;
    for (let i = 0; i < size; i++) out[i] = (v >> ((i % 4) * 8)) & 0xff;
    return out;
  };
}
