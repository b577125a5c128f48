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

/** Settled ids remembered per connection, enough to name a replay after many rounds. */
const REMEMBERED = 32;

export class Pending<T extends Issued> {
  readonly #open = new Map<string, { item: T; timer: Timer }>();
  readonly #settled = new Map<string, Settlement>();

  /** `onDeadline` runs when an item is still open at its deadline (after it was settled as expired). */
  constructor(
    private readonly clock: Clock,
    private readonly onDeadline: (item: T) => void,
    private readonly remember = REMEMBERED,
  ) {}

  open(item: T): void {
    if (this.#open.has(item.id) || this.#settled.has(item.id))
      throw new Error(`pending: id ${item.id} was issued already on this connection`);
    const timer = this.clock.after(item.deadlineAt - this.clock.now(), () => {
      if (this.settle(item.id, 'expired')) this.onDeadline(item);
    });
    this.#open.set(item.id, { item, timer });
  }

  lookup(id: string): Lookup<T> {
    const open = this.#open.get(id);
    if (open) return { kind: 'open', item: open.item };
    const how = this.#settled.get(id);
    return how ? { kind: 'settled', how } : { kind: 'unknown' };
  }

  /** Settles an open item once; returns it, or undefined when it was not open. */
  settle(id: string, how: Settlement): T | undefined {
    const open = this.#open.get(id);
    if (!open) return undefined;
    open.timer.cancel();
    this.#open.delete(id);
    this.#settled.set(id, how);
    if (this.#settled.size > this.remember) this.#settled.delete(this.#settled.keys().next().value!);
    return open.item;
  }

  /** The items in flight, oldest first. */
  values(): IterableIterator<T> {
    return Array.from(this.#open.values(), (o) => o.item).values();
  }

  get size(): number {
    return this.#open.size;
  }

  /** Stops every deadline and returns what was in flight (the connection is gone). */
  drain(): T[] {
    const items = [...this.#open.values()].map((o) => {
      o.timer.cancel();
      return o.item;
    });
    this.#open.clear();
    return items;
  }
}
