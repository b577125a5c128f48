import type { Logger } from 'pino';
import type { Delivery } from './delivery.ts';
import type { HeldRollouts } from './held.ts';
import { needsEngine } from './model.ts';
import type { ForwardedReport, OwnedRollout, RolloutPeers, SharedRollouts } from './peers.ts';
import { type Steps, stateKey } from './steps.ts';

// Several gateways (docs/rollouts.md §11): what a gateway does for the members it holds of
// rollouts another gateway owns. It keeps a copy of each, read from the store whenever the owner
// announces a change (the store, not the bus, is the truth: a lost announcement delays the copy,
// it does not corrupt it), sends those members the commands in flight the copy names and asks
// their swarm rounds (delivery.ts), and tells the owner what only it sees: their reports, and
// that a member's attested connection here ended. It never steps a copy.

export interface CopiesDeps {
  readonly held: HeldRollouts;
  /** The engine's queue: a copy is read and replaced in turn with the steps. */
  readonly steps: Pick<Steps, 'run' | 'failed' | 'load' | 'closed'>;
  readonly delivery: Pick<Delivery, 'rollout'>;
  readonly store: Pick<SharedRollouts, 'rolloutRow'>;
  readonly peers: Pick<RolloutPeers, 'me' | 'report' | 'left'>;
  readonly log: Logger;
}

export class Copies {
  /** Copies to read again from the store. */
  readonly #stale = new Set<string>();

  constructor(private readonly d: CopiesDeps) {}

  /** Reads a copy again soon (one read for any number of changes heard meanwhile). */
  refreshSoon(id: string): void {
    if (this.#stale.has(id)) return;
    this.#stale.add(id);
    this.#read(id, false, () => this.#stale.delete(id) && !this.d.held.owns(id));
  }

  /**
   * Takes a stored rollout owned elsewhere as this gateway's copy, and acts on what it says
   * (`again`: its commands in flight go out once more to the members held here).
   */
  async copy(row: OwnedRollout, again = false): Promise<void> {
    const { held } = this.d;
    const r = row.rollout;
    const id = r.spec.id;
    if (held.owns(id)) return;
    const before = held.get(id);
    if (!needsEngine(r)) {
      if (before) held.drop(id);
      return;
    }
    held.follow(id, row.owner);
    if (!before) await this.d.steps.load(r, row);
    else if (stateKey(before) !== stateKey(r)) held.replace(before, r);
    const copy = held.get(id);
    if (copy) this.d.delivery.rollout(copy, again);
  }

  /**
   * Every rollout that needs an engine, read again (the bus was away): the copies among them
   * taken again and their commands sent again; copies of rollouts no longer there dropped.
   */
  async reread(rows: readonly OwnedRollout[]): Promise<void> {
    const { held } = this.d;
    const live = new Set(rows.map((row) => row.rollout.spec.id));
    for (const row of rows) {
      if (!held.owns(row.rollout.spec.id)) await this.copy(row, true);
    }
    for (const id of [...held.ids()]) if (!live.has(id) && !held.owns(id)) held.drop(id);
  }

  /** The owner asks for its commands in flight again: the copy is read, then sent to members here. */
  resendAsked(owner: string, id: string): void {
    if (this.d.held.owns(id) || this.d.steps.closed) return;
    this.d.held.follow(id, owner);
    this.#read(id, true, () => true);
  }

  /** Reads a copy from the store in the engine's queue, if `still` says so then, and takes it. */
  #read(id: string, again: boolean, still: () => boolean): void {
    void this.d.steps
      .run(async () => {
        if (!still()) return;
        const row = await this.d.store.rolloutRow(id);
        if (row) await this.copy(row, again);
      })
      .catch((err) => this.d.steps.failed(id, err));
  }

  /** A report of a member held here, for the owner of its rollout. */
  forward(report: ForwardedReport): void {
    const owner = this.d.held.ownerOf(report.rollout);
    const { peers } = this.d;
    // No owner reachable now: the owner that takes it over asks for the command again.
    if (!owner || owner === peers.me) return;
    void peers.report(owner, report).then((sent) => {
      if (!sent)
        this.d.log.debug(
          { rollout: report.rollout, device: report.device, state: report.state },
          'report not forwarded (the bus is down): the device repeats it when its command goes out again',
        );
    });
  }

  /**
   * A member of a copy lost its attested connection here: its owner hears it now rather than at
   * its next look, so that an operation not yet due is cancelled at once, as on one gateway.
   */
  tellLeft(rollout: string, device: string): void {
    const owner = this.d.held.ownerOf(rollout);
    const { peers } = this.d;
    if (owner && owner !== peers.me) void peers.left(owner, rollout, device);
  }
}
