import type { Clock } from '../../shared/clock.ts';
import { type Lookup, Pending } from '../connections/pending.ts';
import type { InFlight, Rollout } from './model.ts';

// The commands of rollouts in flight, per device rather than per connection: a device that
// restarts, or comes back on another connection, reports on its next one, and a report must be
// told apart as open, late (settled) or never sent. The rollout's `inflight` set is the truth;
// this follows it, opened and settled as the rollout steps, and wakes the rollout at a deadline.

/** A command in flight as a device's Pending set keeps it. */
export interface Sent {
  readonly id: string;
  readonly deadlineAt: number;
  readonly rollout: string;
}

/** Settled ids remembered per device: a device may repeat a report after many commands. */
const REMEMBERED = 64;

export class CommandsInFlight {
  readonly #byDevice = new Map<string, Pending<Sent>>();

  /** `due` runs when a command is still open at its deadline: its rollout has a step to take. */
  constructor(
    private readonly clock: Clock,
    private readonly due: (rollout: string) => void,
  ) {}

  lookup(device: string, id: string): Lookup<Sent> {
    return this.#byDevice.get(device)?.lookup(id) ?? { kind: 'unknown' };
  }

  /** Opens what `after` has in flight that `before` had not, and settles what it no longer has. */
  sync(before: Rollout | undefined, after: Rollout): void {
    const now = this.clock.now();
    for (const [id, f] of Object.entries(after.inflight))
      if (!before || !(id in before.inflight)) this.#open(after.spec.id, id, f);
    if (!before) return;
    for (const [id, f] of Object.entries(before.inflight))
      if (!(id in after.inflight))
        this.#byDevice.get(f.member)?.settle(id, f.deadlineAt <= now ? 'expired' : 'answered');
  }

  /** Stops every deadline (the engine is closing). */
  drain(): void {
    for (const p of this.#byDevice.values()) p.drain();
  }

  #open(rollout: string, id: string, f: InFlight): void {
    let p = this.#byDevice.get(f.member);
    if (!p) {
      p = new Pending<Sent>(this.clock, (item) => this.due(item.rollout), REMEMBERED);
      this.#byDevice.set(f.member, p);
    }
    if (p.lookup(id).kind === 'unknown') p.open({ id, deadlineAt: f.deadlineAt, rollout });
  }
}
