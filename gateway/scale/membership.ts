import type { Logger } from 'pino';
import type { Clock } from '../../shared/clock.ts';
import type { Rollout } from '../rollouts/model.ts';
import type { SharedStore, StoredRound } from '../store/postgres.ts';
import { every } from './every.ts';

// Which gateways are alive, by heartbeats in PostgreSQL (the database's clock, one for all
// machines; it works with Redis away). A gateway not heard from within the lease is gone: a
// survivor adopts its pending rounds (one survivor per round: the store's UPDATE decides) and
// settles them at their deadlines, takes its rollouts over (one survivor per rollout, likewise),
// and the expiries of the devices it wrote last pass to others.

export interface MembershipDeps {
  readonly store: SharedStore;
  readonly leaseMs: number;
  readonly clock: Clock;
  readonly log: Logger;
  /** Gateways that were alive at the previous heartbeat and are not now. */
  readonly gone: (ids: readonly string[]) => void;
  /** Pending rounds taken over from gateways that are gone. */
  readonly adopted: (rounds: readonly StoredRound[]) => void;
  /** Rollouts taken over from gateways that are gone (or that nobody owned). */
  readonly adoptedRollouts: (rollouts: readonly Rollout[]) => void;
}

export class Membership {
  private liveSet: ReadonlySet<string>;
  private stopBeating: (() => void) | undefined;
  private beating = true;

  constructor(private readonly deps: MembershipDeps) {
    this.liveSet = new Set([deps.store.gatewayId]);
  }

  get live(): ReadonlySet<string> {
    return this.liveSet;
  }

  /** Whether the last heartbeat reached the store. */
  get healthy(): boolean {
    return this.beating;
  }

  /**
   * The first heartbeat: before this gateway reads its own pending rounds, so that a survivor
   * adopting them and this gateway re-arming them cannot both happen (see adoptRounds).
   */
  async join(): Promise<void> {
    this.liveSet = new Set(await this.deps.store.heartbeat(this.deps.leaseMs));
  }

  start(): void {
    this.stopBeating = every(this.deps.clock, this.deps.leaseMs / 3, () => this.beat());
  }

  private async beat(): Promise<void> {
    const { store, leaseMs, log } = this.deps;
    try {
      const live = new Set(await store.heartbeat(leaseMs));
      this.beating = true;
      const gone = [...this.liveSet].filter((id) => !live.has(id));
      this.liveSet = live;
      if (gone.length > 0) {
        log.warn({ gone }, 'gateways stopped heartbeating: their rounds and devices pass to the others');
        this.deps.gone(gone);
      }
      const adopted = await store.adoptRounds(leaseMs);
      if (adopted.length > 0) {
        log.info({ rounds: adopted.length }, 'adopted the pending rounds of gateways that are gone');
        this.deps.adopted(adopted);
      }
      const rollouts = await store.adoptRollouts(leaseMs);
      if (rollouts.length > 0) this.deps.adoptedRollouts(rollouts);
    } catch (err) {
      if (this.beating)
        log.warn({ err: (err as Error).message }, 'heartbeat failed (the store is unreachable?); retried');
      this.beating = false;
    }
  }

  /** Stops heartbeating and says goodbye: the others adopt this gateway's rounds at once. */
  async close(): Promise<void> {
    this.stopBeating?.();
    await this.deps.store.leave().catch(() => {});
  }
}
