// Reconnect delays: exponential with full jitter (delay drawn uniformly from [0, min(cap, base·2^n)]).
// When a gateway restarts, every device loses its connection at the same instant; full jitter
// spreads their returns over the whole window instead of sending them back in synchronised waves
// (the AWS architecture blog's comparison of jitter strategies is the usual reference).

export interface BackoffPolicy {
  /** Upper bound of the first delay, ms. */
  readonly baseMs: number;
  /** Largest upper bound any delay may have, ms. */
  readonly capMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 1000, capMs: 60_000 };

export class Backoff {
  readonly policy: BackoffPolicy;
  readonly #random: () => number;
  #attempt = 0;

  constructor(policy: BackoffPolicy = DEFAULT_BACKOFF, random: () => number = Math.random) {
    if (!(policy.baseMs > 0 && policy.capMs >= policy.baseMs)) {
      throw new RangeError(
        `backoff needs 0 < baseMs <= capMs, got baseMs ${policy.baseMs}, capMs ${policy.capMs}`,
      );
    }
    this.policy = policy;
    this.#random = random;
  }

  /** Failed attempts since the last reset. */
  get attempt(): number {
    return this.#attempt;
  }

  /** The delay before the next attempt; each call widens the window up to the cap. */
  next(): number {
    // Capping the exponent keeps 2^n finite however long the gateway stays away.
    const window = Math.min(this.policy.capMs, this.policy.baseMs * 2 ** Math.min(this.#attempt, 30));
    this.#attempt++;
    return Math.floor(this.#random() * window);
  }

  reset(): void {
    this.#attempt = 0;
  }
}
