// Write-behind queue: the reason a 10,000-device round is a handful of commits, not 10,000.
// Writes wait here until the queue holds `maxBatch` of them or `flushDelayMs` has passed, then
// go to the engine together, in the order they were made, in one transaction.
//
// A keyed write (an upsert of one record) replaces a queued write with the same key in place:
// only the newest state of a record is worth committing, and keeping the first position keeps
// the order the engine's foreign keys rely on (the device row still precedes its rounds).

export interface Write {
  /** The table written, so a read of another table need not wait for this write. */
  readonly table: string;
  /** What it is, for an operator reading a failure report, e.g. `saveRound 00ff…`. */
  readonly what: string;
  readonly run: () => void;
  /** For a keyed upsert: the record it writes, which is what a read of that key must see. */
  readonly record?: unknown;
}

export interface WriteQueueOptions {
  /** Longest a write waits before its commit, in ms. */
  readonly flushDelayMs: number;
  /** Commit as soon as this many writes are queued. */
  readonly maxBatch: number;
}

export class WriteQueue {
  private writes: Write[] = [];
  private readonly slotOf = new Map<string, number>();
  private readonly tables = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private coalescedCount = 0;
  /** A background flush failed and a retry is scheduled: do not retry on every write. */
  private failing = false;

  /**
   * `commit` applies the writes in one transaction and throws only when that transaction as a
   * whole failed (nothing of it is then committed); `onBackgroundError` hears of such a failure
   * when no caller is there to throw to.
   */
  constructor(
    private readonly commit: (writes: readonly Write[]) => void,
    private readonly options: WriteQueueOptions,
    private readonly onBackgroundError: (err: unknown) => void,
  ) {}

  push(write: Write, key?: string): void {
    const slot = key === undefined ? undefined : this.slotOf.get(key);
    if (slot !== undefined) {
      this.writes[slot] = write;
      this.coalescedCount++;
      return;
    }
    if (key !== undefined) this.slotOf.set(key, this.writes.length);
    this.writes.push(write);
    this.tables.add(write.table);
    if (this.writes.length >= this.options.maxBatch && !this.failing) this.flushInBackground();
    else this.timer ??= setTimeout(() => this.flushInBackground(), this.options.flushDelayMs).unref();
  }

  get length(): number {
    return this.writes.length;
  }

  get coalesced(): number {
    return this.coalescedCount;
  }

  /** The queued write with this key, if any: the newest state of that record. */
  queued(key: string): Write | undefined {
    const slot = this.slotOf.get(key);
    return slot === undefined ? undefined : this.writes[slot];
  }

  /** Whether a write to any of these tables is still queued. */
  pendingFor(...tables: string[]): boolean {
    return tables.some((t) => this.tables.has(t));
  }

  flush(): void {
    this.clearTimer();
    if (this.writes.length === 0) return;
    // Commit is synchronous, so nothing can be pushed meanwhile. If it throws, nothing was
    // committed and the queue is left exactly as it was: a transient failure (disk full, a busy
    // lock) loses nothing, and the next flush retries.
    this.commit(this.writes);
    this.writes = [];
    this.slotOf.clear();
    this.tables.clear();
    this.failing = false;
  }

  /** A flush nobody waits on (timer, full queue): failures are reported, retried later. */
  private flushInBackground(): void {
    try {
      this.flush();
    } catch (err) {
      this.failing = true;
      this.onBackgroundError(err);
      // Retry after a pause rather than on every write: the queue is intact.
      this.timer = setTimeout(() => this.flushInBackground(), this.options.flushDelayMs * 10).unref();
    }
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Stop the timer without committing (the owner flushes first when it wants the writes). */
  dispose(): void {
    this.clearTimer();
  }
}
