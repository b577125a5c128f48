// Write-behind queue: the reason a 10,000-device round is a handful of commits, not 10,000.
// Writes wait here until the queue holds `maxBatch` of them or `flushDelayMs` has passed, then
// go to the engine together, in the order they were made, in one transaction.
//
// A keyed write (an upsert of one record) replaces a queued write with the same key in place:
// only the newest state of a record is worth committing, and keeping the first position keeps
// the order the engine's foreign keys rely on (the device row still precedes its rounds).
//
// When a commit fails as a whole (a full disk, a read-only file system), nothing of it was
// committed and the queue keeps every write: the next commit, retried with a growing pause,
// applies them all once the engine can write again. While it cannot, the queue is bounded by
// `maxQueued`: past it, history is dropped, oldest first, in two tiers: routine rounds first
// (`shed: 1`), then the rest of the history (`shed: 2`: posture events, enrolment rounds). What
// the gateway is (devices, their AKs and posture, the allowlist, releases, batches) is never
// dropped; those records are keyed and bounded by the fleet and the operator.

export interface Write {
  /** The table written, so a read of another table need not wait for this write. */
  readonly table: string;
  /** What it is, for an operator reading a failure report, e.g. `saveRound 00ff…`. */
  readonly what: string;
  readonly run: () => void;
  /** For a keyed upsert: the record it writes, which is what a read of that key must see. */
  readonly record?: unknown;
  /** May be dropped when the queue is over its bound, tier 1 before tier 2; never when absent. */
  readonly shed?: 1 | 2;
}

export interface WriteQueueOptions {
  /** Longest a write waits before its commit, in ms. */
  readonly flushDelayMs: number;
  /** Commit as soon as this many writes are queued. */
  readonly maxBatch: number;
  /** Writes kept while commits fail; past it, history is dropped (see above). */
  readonly maxQueued: number;
  /** Longest pause between retries of a failing commit, in ms. */
  readonly maxRetryMs: number;
  readonly now: () => number;
}

/** What the queue tells its owner about the engine's ability to write. */
export type QueueEvent =
  /** A commit failed: the queue keeps the writes and retries. */
  | { readonly kind: 'failing'; readonly error: unknown }
  /** The queue went over its bound during this failure and dropped its first write. */
  | { readonly kind: 'shedding' }
  /** A commit succeeded after failures. */
  | { readonly kind: 'recovered'; readonly committed: number; readonly failedForMs: number };

interface Entry {
  write: Write;
  readonly key: string | undefined;
}

export class WriteQueue {
  private entries: (Entry | undefined)[] = [];
  private live = 0;
  private readonly slotOf = new Map<string, number>();
  private readonly tables = new Set<string>();
  /** Per shed tier, the slots that held a write of that tier, oldest first, and how far dropping got. */
  private readonly sheddable = { 1: [] as number[], 2: [] as number[] };
  private readonly shedFrom = { 1: 0, 2: 0 };
  private timer: NodeJS.Timeout | undefined;
  private coalescedCount = 0;
  private droppedCount = 0;
  /** Set while commits fail: since when, the pause before the next retry, whether it shed yet. */
  private failure: { since: number; retryMs: number; shedding: boolean } | undefined;
  private lastFailure: { readonly message: string; readonly at: number } | undefined;

  /**
   * `commit` applies the writes in one transaction and throws only when that transaction as a
   * whole failed (nothing of it is then committed); `onEvent` hears when commits start failing,
   * when the queue starts dropping history, and when commits succeed again.
   */
  constructor(
    private readonly commit: (writes: readonly Write[]) => void,
    private readonly options: WriteQueueOptions,
    private readonly onEvent: (event: QueueEvent) => void,
  ) {}

  push(write: Write, key?: string): void {
    const slot = key === undefined ? undefined : this.slotOf.get(key);
    if (slot !== undefined) {
      const entry = this.entries[slot]!;
      if (write.shed !== undefined && write.shed !== entry.write.shed) this.sheddable[write.shed].push(slot);
      entry.write = write;
      this.coalescedCount++;
      return;
    }
    const at = this.entries.length;
    if (key !== undefined) this.slotOf.set(key, at);
    this.entries.push({ write, key });
    this.live++;
    if (write.shed !== undefined) this.sheddable[write.shed].push(at);
    this.tables.add(write.table);
    if (this.live > this.options.maxQueued) this.shedOne();
    if (this.live >= this.options.maxBatch && !this.failure) this.flushInBackground();
    else this.timer ??= setTimeout(() => this.flushInBackground(), this.options.flushDelayMs).unref();
  }

  /** Writes waiting for a commit. */
  get length(): number {
    return this.live;
  }

  get coalesced(): number {
    return this.coalescedCount;
  }

  /** Writes dropped over the bound while commits failed, since the queue was made. */
  get dropped(): number {
    return this.droppedCount;
  }

  /** Whether the last commit failed (retries are scheduled). */
  get failing(): boolean {
    return this.failure !== undefined;
  }

  /** When the current failure started, if commits are failing. */
  get failingSince(): number | undefined {
    return this.failure?.since;
  }

  /** The last commit that failed, kept after recovery for operators. */
  get lastError(): { readonly message: string; readonly at: number } | undefined {
    return this.lastFailure;
  }

  /** The queued write with this key, if any: the newest state of that record. */
  queued(key: string): Write | undefined {
    const slot = this.slotOf.get(key);
    return slot === undefined ? undefined : this.entries[slot]?.write;
  }

  /** The queued writes to `table`, in order. */
  queuedFor(table: string): Write[] {
    if (!this.tables.has(table)) return [];
    const out: Write[] = [];
    for (const e of this.entries) if (e && e.write.table === table) out.push(e.write);
    return out;
  }

  /** Whether a write to any of these tables is still queued. */
  pendingFor(...tables: string[]): boolean {
    return tables.some((t) => this.tables.has(t));
  }

  /** Commits every queued write now; throws (the queue intact, a retry scheduled) when it fails. */
  flush(): void {
    this.clearTimer();
    const writes: Write[] = [];
    for (const e of this.entries) if (e) writes.push(e.write);
    try {
      // Commit is synchronous, so nothing can be pushed meanwhile. If it throws, nothing was
      // committed and the queue is left exactly as it was.
      if (writes.length > 0) this.commit(writes);
    } catch (err) {
      this.failed(err);
      throw err;
    }
    this.reset();
    const failure = this.failure;
    if (failure) {
      this.failure = undefined;
      this.onEvent({
        kind: 'recovered',
        committed: writes.length,
        failedForMs: this.options.now() - failure.since,
      });
    }
  }

  private failed(err: unknown): void {
    this.lastFailure = { message: err instanceof Error ? err.message : String(err), at: this.options.now() };
    const first = this.failure === undefined;
    // Retry after a pause that doubles up to a bound: a full disk rarely frees itself in
    // milliseconds, and each attempt costs work in proportion to the queue.
    const retryMs = first
      ? this.options.flushDelayMs * 10
      : Math.min(this.failure!.retryMs * 2, this.options.maxRetryMs);
    this.failure = first
      ? { since: this.options.now(), retryMs, shedding: false }
      : { ...this.failure!, retryMs };
    this.timer = setTimeout(() => this.flushInBackground(), retryMs).unref();
    if (first) this.onEvent({ kind: 'failing', error: err });
  }

  /** A flush nobody waits on (timer, full queue): a failure is reported through onEvent. */
  private flushInBackground(): void {
    try {
      this.flush();
    } catch {
      // failed() scheduled the retry and reported the failure when it began.
    }
  }

  /** Drops the oldest write of the lowest tier that has one; none when only durable state is queued. */
  private shedOne(): void {
    for (const tier of [1, 2] as const) {
      const slots = this.sheddable[tier];
      while (this.shedFrom[tier] < slots.length) {
        const slot = slots[this.shedFrom[tier]++]!;
        const entry = this.entries[slot];
        if (entry?.write.shed !== tier) continue;
        this.entries[slot] = undefined;
        if (entry.key !== undefined) this.slotOf.delete(entry.key);
        this.live--;
        this.droppedCount++;
        if (this.failure && !this.failure.shedding) {
          this.failure.shedding = true;
          this.onEvent({ kind: 'shedding' });
        }
        return;
      }
    }
  }

  private reset(): void {
    this.entries = [];
    this.live = 0;
    this.slotOf.clear();
    this.tables.clear();
    this.sheddable[1] = [];
    this.sheddable[2] = [];
    this.shedFrom[1] = 0;
    this.shedFrom[2] = 0;
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
