// Keyed writes that wait longer than the write queue's flush delay, because a newer write of the
// same record usually comes before they are due and makes them pointless. A pending round is the
// case: it is stored so that a restarted gateway re-arms its deadline, but most rounds settle
// within a second or two, and the settled record replaces the pending one. Held, a round is
// written once instead of twice. The cost is the restart window: a gateway that dies within
// `holdMs` of issuing a round has no record of it (docs/performance.md weighs this).
//
// A held write is handed to the queue (`release`) when it is due, when a read needs its table,
// and at every explicit flush and close; `take` removes one that a newer write supersedes.

export class HeldWrites<W> {
  /** Insertion order is hold order; a release hands writes to the queue in that order. */
  readonly #held = new Map<string, { readonly write: W; readonly due: number }>();
  #timer: NodeJS.Timeout | undefined;
  #superseded = 0;

  constructor(
    private readonly holdMs: number,
    private readonly release: (write: W, key: string) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Holds `write` under `key` for `holdMs` (the constructor's, or less), replacing (and so
   * superseding) one already held there.
   */
  hold(key: string, write: W, holdMs = this.holdMs): void {
    if (this.#held.delete(key)) this.#superseded++;
    const ms = Math.max(0, Math.min(holdMs, this.holdMs));
    this.#held.set(key, { write, due: this.now() + ms });
    // Holds are never longer than the constructor's: one timer at that interval catches each.
    this.#timer ??= setTimeout(() => this.#releaseDue(), ms).unref();
  }

  /** Removes and returns the write held under `key`: a newer write of that record supersedes it. */
  take(key: string): W | undefined {
    const held = this.#held.get(key);
    if (!held) return undefined;
    this.#held.delete(key);
    this.#superseded++;
    return held.write;
  }

  peek(key: string): W | undefined {
    return this.#held.get(key)?.write;
  }

  /** Hands every held write to the queue, oldest first. */
  releaseAll(): void {
    this.#clearTimer();
    const all = [...this.#held];
    this.#held.clear();
    for (const [key, { write }] of all) this.release(write, key);
  }

  get size(): number {
    return this.#held.size;
  }

  /** Held writes made pointless by a newer write of the same record before they were due. */
  get superseded(): number {
    return this.#superseded;
  }

  /** Stops the timer without releasing (the owner releases first when it wants the writes). */
  dispose(): void {
    this.#clearTimer();
  }

  #releaseDue(): void {
    this.#timer = undefined;
    const now = this.now();
    let next = Number.POSITIVE_INFINITY;
    for (const [key, { write, due }] of this.#held) {
      if (due > now) {
        next = Math.min(next, due);
        continue;
      }
      this.#held.delete(key);
      this.release(write, key);
    }
    if (next !== Number.POSITIVE_INFINITY)
      this.#timer = setTimeout(() => this.#releaseDue(), next - now).unref();
  }

  #clearTimer(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
