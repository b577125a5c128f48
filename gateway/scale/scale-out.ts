import type { Logger } from 'pino';
import type { Clock, Random } from '../../shared/clock.ts';
import type { Broker, ConnectRefusal } from '../broker/broker.ts';
import type { GatewayConfig } from '../config.ts';
import type { Connections } from '../connections/registry.ts';
import type { EventBus } from '../events.ts';
import type { RoundRecord } from '../model.ts';
import type { RuntimePolicy } from '../policy/runtime-policy.ts';
import type { Fleet } from '../posture/fleet.ts';
import type { RolloutEngine } from '../rollouts/engine.ts';
import type { Attestation, AttestationObserver } from '../rounds/attestation.ts';
import type { BatchTracker } from '../rounds/batches.ts';
import { recoverPendingRounds } from '../rounds/recovery.ts';
import type { SharedStore, StoredRound } from '../store/postgres.ts';
import { AppBridge } from './app-bridge.ts';
import { ControlBus } from './bus.ts';
import { Claims } from './claims.ts';
import { EventBridge } from './event-bridge.ts';
import { FleetRounds } from './fleet-rounds.ts';
import { FleetSync } from './fleet-sync.ts';
import type { HealthReport } from './health.ts';
import { Holdings } from './holdings.ts';
import { Membership } from './membership.ts';
import type { StoreHooks } from './open-store.ts';
import { mayLapse } from './ownership.ts';
import { RolloutBridge } from './rollout-bridge.ts';

// Several gateways on one PostgreSQL and one Redis (docs/scale.md): what a gateway adds to join
// the others. Built right after the store (so that this gateway's first heartbeat precedes its
// reading of its own pending rounds), given the gateway's parts once they exist (attach), and
// reached by the gateway through a handful of hooks: mayConnect (the broker), requestElsewhere
// (batches), mayLapse (posture expiry), the attestation observer and connectionEnded; the rollout
// engine talks to the other gateways through `rollouts` (rollout-bridge.ts).

/** The gateway's parts the scale-out layer works with, handed over once built. */
export interface ScaleParts {
  readonly fleet: Fleet;
  readonly connections: Connections;
  readonly attestation: Attestation;
  readonly batches: BatchTracker;
  readonly events: EventBus;
  readonly broker: Broker;
  readonly rollouts: Pick<RolloutEngine, 'heardRound' | 'heardRollout' | 'busUp' | 'adopt'>;
  readonly refreshPolicy: () => Promise<void>;
  readonly policy: () => RuntimePolicy;
  /** Every observer's roundSettled (events, metrics, batches). */
  readonly settled: (round: RoundRecord) => void;
}

export interface ScaleOutOptions {
  readonly config: GatewayConfig;
  readonly store: SharedStore;
  readonly hooks: StoreHooks;
  readonly log: Logger;
  readonly clock: Clock;
  readonly random: Random;
}

interface Attached {
  readonly parts: ScaleParts;
  readonly sync: FleetSync;
  readonly rounds: FleetRounds;
  readonly events: EventBridge;
  readonly app: AppBridge;
}

export class ScaleOut {
  readonly me: string;
  readonly bus: ControlBus;
  /** Rollouts across gateways: requests to owners, reports, claims of members. */
  readonly rollouts: RolloutBridge;
  private readonly holdings: Holdings;
  private readonly membership: Membership;
  private attached: Attached | undefined;
  private readonly cancels: (() => void)[] = [];
  private draining = false;

  private constructor(private readonly opts: ScaleOutOptions) {
    const { config, store, log, clock, random } = opts;
    const timings = config.scale.timings;
    this.me = config.scale.gatewayId;
    this.bus = new ControlBus({ url: config.scale.redis!, gatewayId: this.me, log });
    this.holdings = new Holdings({
      me: this.me,
      claims: new Claims(this.bus.commands, this.me, timings.claimTtlMs),
      bus: this.bus,
      connections: () => this.attached?.parts.connections,
      claimTtlMs: timings.claimTtlMs,
      clock,
      random,
      log,
    });
    this.membership = new Membership({
      store,
      leaseMs: timings.leaseMs,
      clock,
      log,
      gone: (ids) => this.gatewaysGone(ids),
      adopted: (rounds) => this.adopt(rounds),
      adoptedRollouts: (rollouts) => this.attached?.parts.rollouts.adopt(rollouts),
    });
    this.rollouts = new RolloutBridge({
      me: this.me,
      bus: this.bus,
      claims: new Claims(this.bus.commands, this.me, timings.claimTtlMs),
      live: () => this.membership.live,
      holdingOff: () => this.holdings.holdingOff(clock.now()),
      claimTtlMs: timings.claimTtlMs,
      clock,
      random,
      log,
    });
  }

  /** Joins the fleet: the first heartbeat, then the bus (connecting in the background). */
  static async start(opts: ScaleOutOptions): Promise<ScaleOut> {
    const s = new ScaleOut(opts);
    await s.membership.join();
    s.bus.start();
    opts.log.info(
      { gateway: s.me, gateways: [...s.membership.live] },
      'joined the fleet of gateways (PostgreSQL shared, Redis as control bus)',
    );
    return s;
  }

  /** The gateway's parts exist: start the cross-gateway work. Before the broker listens. */
  async attach(parts: ScaleParts): Promise<void> {
    const { store, hooks, log, clock, random, config } = this.opts;
    const sync = new FleetSync({
      me: this.me,
      store,
      bus: this.bus,
      fleet: parts.fleet,
      connections: parts.connections,
      refreshPolicy: parts.refreshPolicy,
      policy: parts.policy,
      log,
    });
    const rounds = new FleetRounds({
      me: this.me,
      store,
      bus: this.bus,
      connections: parts.connections,
      attestation: parts.attestation,
      batches: parts.batches,
      live: () => this.membership.live,
      requestTtlMs: config.scale.timings.requestTtlMs,
      clock,
      random,
      log,
      settled: parts.settled,
    });
    const events = new EventBridge({
      me: this.me,
      bus: this.bus,
      events: parts.events,
      committed: () => store.caughtUp(),
      heard: (e) => {
        if (e.kind === 'round' && e.round.state !== 'pending') {
          parts.batches.settledElsewhere(e.round.id);
          parts.rollouts.heardRound(e.device);
        } else if (e.kind === 'rollout') parts.rollouts.heardRollout(e.notice.id);
      },
      log,
    });
    const app = new AppBridge({
      me: this.me,
      bus: this.bus,
      aedes: parts.broker.aedes,
      clock,
      ttlMs: config.scale.timings.claimTtlMs,
      log,
    });
    this.attached = { parts, sync, rounds, events, app };
    hooks.commit = (c) => sync.committed(c);
    hooks.conflict = (c) => sync.conflicts(c);
    this.bus.on('retire', (m) => {
      if (m.from !== this.me) this.holdings.retire(m.device, m.from);
    });
    this.bus.onUp(() => {
      // Whatever the bus carried while it was away: read it from PostgreSQL.
      void this.holdings
        .busUp()
        .catch((err: Error) => log.warn({ err: err.message }, 'claiming again failed'));
      sync.reload('all');
      sync.policyChanged();
      rounds.busUp();
      parts.rollouts.busUp();
    });
    rounds.resume(await store.ownRequested());
    this.holdings.start();
    this.membership.start();
    app.start();
  }

  // Hooks the gateway calls.

  /** The broker's mayConnect: refused while another gateway holds the device; else its record is read fresh. */
  async mayConnect(deviceId: string): Promise<ConnectRefusal | undefined> {
    if (this.draining) return { returnCode: 3, reason: 'this gateway is shutting down; connect to another' };
    const refusal = await this.holdings.admit(deviceId);
    if (refusal) return refusal;
    // The device may have been enrolled or appraised on another gateway a moment ago.
    const fleet = this.attached?.parts.fleet;
    if (fleet) await this.opts.store.reloadDevices([deviceId], (records) => fleet.load(records));
    return undefined;
  }

  /**
   * For the API (`heardOf`): devices named by id that this gateway does not know yet, read from the
   * store. Enrolments are committed before their first result, so a device that onboarded on
   * another gateway a moment ago is found here before the bus tells of it.
   */
  readonly readUnknown = async (ids: readonly string[]): Promise<void> => {
    const fleet = this.attached?.parts.fleet;
    if (fleet) await this.opts.store.reloadDevices(ids, (records) => fleet.load(records));
  };

  /** BatchTracker's requestElsewhere. */
  readonly requestElsewhere = (deviceId: string, batchId: string) =>
    this.attached?.rounds.request(deviceId, batchId);

  /** Fleet's mayLapse. */
  readonly mayLapse = (id: string): boolean =>
    mayLapse(this.opts.store.lastWriter(id), this.me, this.membership.live);

  /** Joins the attestation observers. */
  readonly observer: AttestationObserver = {
    roundSettled: (r) => {
      const a = this.attached;
      if (!a) return;
      if (
        r.state === 'appraised' &&
        a.parts.connections.attestedOf(r.deviceId) &&
        !this.holdings.holds(r.deviceId)
      ) {
        this.holdings.attested(r.deviceId);
        // Rounds asked of the fleet while the device was on its way here.
        void a.rounds.scan([r.deviceId]);
      }
      a.rounds.roundSettled(r);
    },
  };

  /** A device connection ended here (after the gateway settled its rounds). */
  connectionEnded(deviceId: string): void {
    this.holdings.ended(deviceId);
    this.attached?.rounds.connectionEnded(deviceId);
  }

  /** What the health port reports. */
  report(): HealthReport {
    const store = this.opts.store;
    const now = this.opts.clock.now();
    const storeOk = store.healthy && this.membership.healthy;
    const admitting = !this.draining && storeOk && this.bus.up && !this.holdings.holdingOff(now);
    return {
      admitting,
      gateway: this.me,
      store: storeOk ? 'ok' : 'failing',
      bus: this.bus.up ? 'up' : 'down',
      ...(this.holdings.holdingOff(now) && { holdingOff: true }),
      ...(this.draining && { draining: true }),
      devices: this.holdings.count,
      gateways: [...this.membership.live],
    };
  }

  /** Shutting down: new connections go elsewhere from now on. */
  drain(): void {
    this.draining = true;
  }

  // Other gateways.

  private gatewaysGone(ids: readonly string[]): void {
    const fleet = this.attached?.parts.fleet;
    if (!fleet) return;
    // Devices whose expiry a gone gateway would have run: re-armed here (a past one fires now).
    const gone = new Set(ids);
    const orphans = [...fleet.all()].filter((d) => gone.has(this.opts.store.lastWriter(d.id) ?? ''));
    fleet.load(orphans);
  }

  private adopt(rounds: readonly StoredRound[]): void {
    const a = this.attached;
    if (!a) return;
    const { store, clock } = this.opts;
    const issued = rounds.filter((r) => !r.requested);
    a.rounds.resume(rounds.filter((r) => r.requested));
    if (issued.length === 0) return;
    // Their devices' records as they stand now decide how the rounds end (recovery.ts).
    void store.reloadDevices([...new Set(issued.map((r) => r.deviceId))], (records) => {
      a.parts.fleet.load(records);
      this.cancels.push(recoverPendingRounds(issued, a.parts.fleet, store, clock, a.parts.settled));
    });
  }

  async close(): Promise<void> {
    this.draining = true;
    for (const c of this.cancels.splice(0)) c();
    const a = this.attached;
    a?.app.close();
    a?.events.close();
    a?.rounds.close();
    this.rollouts.close();
    await this.holdings.close();
    await this.membership.close();
    await this.bus.close();
  }
}
