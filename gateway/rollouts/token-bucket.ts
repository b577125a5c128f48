import type { Clock, Timer } from '../../shared/clock.ts';

// The gateway-wide budget for artifact bytes (policy `rollouts.artifactBytesPerSecond`), so that a
// rollout to a whole fleet cannot take the bandwidth and CPU that attestation rounds need. A token
// bucket: tokens are bytes, refilled at the rate, holding at most one second's worth (and never
// less than one chunk, so that any chunk can pass). Waiters are served in arrival order; the rate is
// read at every refill, so a policy reload applies at once.

export class TokenBucket {
  #tokens: number;
  #last: number;
  readonly #waiting: { readonly bytes: number; readonly resolve: () => void }[] = [];
  #timer: Timer | undefined;

  constructor(
    private readonly rate: () => number,
    private readonly clock: Clock,
    /** The largest single take; the bucket always holds at least this much. */
    private readonly largest: number,
  ) {
    this.#tokens = this.capacity();
    this.#last = clock.now();
  }

  private capacity(): number {
    return Math.max(this.rate(), this.largest);
  }

  /** Resolves once `bytes` (at most `largest`) may be sent. */
  take(bytes: number): Promise<void> {
    if (bytes > this.largest) throw new RangeError(`token bucket: ${bytes} bytes is over ${this.largest}`);
    return new Promise((resolve) => {
      this.#waiting.push({ bytes, resolve });
      this.pump();
    });
  }

  /** Gives back bytes taken but not sent (a chunk no longer wanted). */
  refund(bytes: number): void {
    this.#tokens = Math.min(this.capacity(), this.#tokens + bytes);
    this.pump();
  }

  /** Waiters not yet served. */
  get waiting(): number {
    return this.#waiting.length;
  }

  close(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  private pump(): void {
    const now = this.clock.now();
    const rate = this.rate();
    this.#tokens = Math.min(this.capacity(), this.#tokens + ((now - this.#last) * rate) / 1000);
    this.#last = now;
    while (this.#waiting.length > 0 && this.#waiting[0]!.bytes <= this.#tokens) {
      const w = this.#waiting.shift()!;
      this.#tokens -= w.bytes;
      w.resolve();
    }
    if (this.#waiting.length === 0 || this.#timer) return;
    const short = this.#waiting[0]!.bytes - this.#tokens;
    this.#timer = this.clock.after(Math.ceil((short * 1000) / rate), () => {
      this.#timer = undefined;
      this.pump();
    });
  }
}
