import type { Clock, Timer } from '../../shared/clock.ts';

// What rounds and commands have in common: the gateway issues something with an id and a
// deadline on one connection, the answer settles it once, and a late or repeated answer must be
// told apart from one that was never asked for ("expired" or "replayed", not "unknown"). One
// piece serves both, so the rules cannot drift apart.

export interface Issued {
  readonly id: string;
  /** Absolute Unix ms. */
  readonly deadlineAt: number;
}

/** How an item left the in-flight set. */
export type Settlement = 'answered' | 'expired';

export type Lookup<T> =
  | { readonly kind: 'open'; readonly item: T }
  | { readonly kind: 'settled'; readonly how: Settlement }
  | { readonly kind: 'unknown' };

/**
 * Settled ids remembered per connection, enough to name a replay after many rounds. A replay is
 * refused either way; the memory is only for the better error code, and every connection pays
 * for it: a ring of 16 references to ids that exist anyway, not a map of 32.
 */
const REMEMBERED = 16;

export class Pending<T extends Issued> {
  /** In flight, oldest first: one or two at a time (a round, a command), so a list, not a map. */
  readonly #open: { readonly item: T; readonly timer: Timer }[] = [];
  readonly #settledIds: string[] = [];
  readonly #settledHow: Settlement[] = [];
  #next = 0;

  /** `onDeadline` runs when an item is still open at its deadline (after it was settled as expired). */
  constructor(
    private readonly clock: Clock,
    private readonly onDeadline: (item: T) => void,
    private readonly remember = REMEMBERED,
  ) {}

  open(item: T): void {
    if (this.#find(item.id) >= 0 || this.#settledIds.includes(item.id))
      throw new Error(`pending: id ${item.id} was issued already on this connection`);
    const timer = this.clock.after(item.deadlineAt - this.clock.now(), () => {
      if (this.settle(item.id, 'expired')) this.onDeadline(item);
    });
    this.#open.push({ item, timer });
  }

  lookup(id: string): Lookup<T> {
    const i = this.#find(id);
    if (i >= 0) return { kind: 'open', item: this.#open[i]!.item };
    const s = this.#settledIds.indexOf(id);
    return s >= 0 ? { kind: 'settled', how: this.#settledHow[s]! } : { kind: 'unknown' };
  }

  /** Settles an open item once; returns it, or undefined when it was not open. */
  settle(id: string, how: Settlement): T | undefined {
    const i = this.#find(id);
    if (i < 0) return undefined;
    const [open] = this.#open.splice(i, 1);
    open!.timer.cancel();
    if (this.remember > 0) {
      this.#settledIds[this.#next] = id;
      this.#settledHow[this.#next] = how;
      this.#next = (this.#next + 1) % this.remember;
    }
    return open!.item;
  }

  /** The item in flight longest, if any. */
  oldest(): T | undefined {
    return this.#open[0]?.item;
  }

  /** The items in flight, oldest first. */
  values(): IterableIterator<T> {
    return this.#open.map((o) => o.item).values();
  }

  get size(): number {
    return this.#open.length;
  }

  /** Stops every deadline and returns what was in flight (the connection is gone). */
  drain(): T[] {
    const items = this.#open.splice(0).map((o) => {
      o.timer.cancel();
      return o.item;
    });
    return items;
  }

  #find(id: string): number {
    for (let i = 0; i < this.#open.length; i++) if (this.#open[i]!.item.id === id) return i;
    return -1;
  }
}
