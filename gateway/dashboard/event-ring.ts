// The last N events of a live stream, numbered from 1, so that a client that lost its connection
// can get what it missed by the number of the last event it saw, or learn that it is too late
// for that and must reload its snapshot instead.

export class EventRing<T> {
  private readonly items: (T | undefined)[];
  /** Number of the newest event; 0 before the first. */
  private seq = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError(`ring capacity must be a whole number ≥ 1, got ${capacity}`);
    this.items = new Array(capacity);
  }

  /** Adds an event; returns its number. */
  push(item: T): number {
    this.seq++;
    this.items[this.seq % this.capacity] = item;
    return this.seq;
  }

  get last(): number {
    return this.seq;
  }

  /**
   * The events after number `seen`, oldest first, with their numbers; undefined when some of them
   * were already overwritten, or `seen` is not a number this ring gave out.
   */
  after(seen: number): { seq: number; item: T }[] | undefined {
    if (!Number.isInteger(seen) || seen < 0 || seen > this.seq) return undefined;
    if (this.seq - seen > this.capacity) return undefined;
    const out: { seq: number; item: T }[] = [];
    for (let s = seen + 1; s <= this.seq; s++) out.push({ seq: s, item: this.items[s % this.capacity] as T });
    return out;
  }
}
