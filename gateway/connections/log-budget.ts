import type { Clock } from '../../shared/clock.ts';

// A client that keeps doing what is refused must not be able to fill the gateway's disk, nor make
// the gateway answer it without end. Per client (a connection), the first few refusals of every
// window are reported in full; the rest are only counted, and how many were held back is reported
// once the next window opens.

const PER_WINDOW = 5;
const WINDOW_MS = 60_000;

export class LogBudget<K extends object> {
  readonly #windows = new WeakMap<K, { start: number; count: number }>();

  constructor(
    private readonly clock: Clock,
    /** Called when a window closes in which `suppressed` occurrences for `key` were held back. */
    private readonly suppressed: (key: K, suppressed: number) => void,
    private readonly perWindow = PER_WINDOW,
    private readonly windowMs = WINDOW_MS,
  ) {}

  /** Counts one occurrence for `key`; true when it is within the window's budget (report it). */
  take(key: K): boolean {
    const now = this.clock.now();
    let w = this.#windows.get(key);
    if (!w || now - w.start >= this.windowMs) {
      if (w && w.count > this.perWindow) this.suppressed(key, w.count - this.perWindow);
      w = { start: now, count: 0 };
      this.#windows.set(key, w);
    }
    w.count++;
    return w.count <= this.perWindow;
  }
}
