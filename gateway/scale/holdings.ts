import type { Logger } from 'pino';
import type { Clock, Random } from '../../shared/clock.ts';
import { toHex } from '../../shared/tpm/index.ts';
import type { ConnectRefusal } from '../broker/broker.ts';
import type { Connections } from '../connections/registry.ts';
import type { ControlBus } from './bus.ts';
import type { Claims } from './claims.ts';
import { every } from './every.ts';
import { connectDecision } from './ownership.ts';

// The devices this gateway holds (an attested connection here), kept claimed in Redis: claimed at
// the first good appraisal of a connection, refreshed while it lives, released when it ends.
// Redis that comes back empty (restarted, nothing persisted) is noticed by an epoch key: every
// gateway then claims again what it holds, and new connections wait one claim expiry so that no
// gateway admits a device another still holds but has not claimed again yet.

const EPOCH_KEY = 'vigil:epoch';

export interface HoldingsDeps {
  readonly me: string;
  readonly claims: Claims;
  readonly bus: ControlBus;
  readonly connections: () => Connections | undefined;
  readonly claimTtlMs: number;
  readonly clock: Clock;
  readonly random: Random;
  readonly log: Logger;
}

export class Holdings {
  private readonly held = new Set<string>();
  private epoch: string | undefined;
  private holdOffUntil = 0;
  /** The bus generation whose epoch was checked: until then, new connections wait. */
  private checked = -1;
  private stopRefresh: (() => void) | undefined;
  private stopped = false;

  constructor(private readonly deps: HoldingsDeps) {}

  /** The broker's mayConnect: asked at CONNECT, after the local checks. */
  async admit(deviceId: string): Promise<ConnectRefusal | undefined> {
    const { bus, claims, me, clock } = this.deps;
    const busUp = bus.up;
    const holder = busUp ? await claims.holder(deviceId) : null;
    return connectDecision({
      deviceId,
      me,
      busUp: bus.up,
      checked: this.checked === bus.generation,
      holdOffUntil: this.holdOffUntil,
      now: clock.now(),
      holder,
    });
  }

  /** A connection of this device attested here: claim it (a newer attested connection wins). */
  attested(deviceId: string): void {
    if (this.held.has(deviceId) || this.stopped) return;
    this.held.add(deviceId);
    this.deps.claims.take(deviceId).then(
      (previous) => {
        if (previous === null) return;
        this.deps.log.info({ device: deviceId, previous }, 'claimed a device another gateway held');
        void this.deps.bus.toGateway(previous, { t: 'retire', from: this.deps.me, device: deviceId });
      },
      (err: Error) =>
        // The refresh claims it as soon as the bus is back.
        this.deps.log.warn({ device: deviceId, err: err.message }, 'claiming a device failed; retried'),
    );
  }

  /** A connection of this device ended here. */
  ended(deviceId: string): void {
    if (!this.held.has(deviceId) || this.deps.connections()?.attestedOf(deviceId)) return;
    this.held.delete(deviceId);
    this.deps.claims.release(deviceId).catch(() => {
      // Unreachable Redis: the claim lapses by itself.
    });
  }

  /** Another gateway now holds a newer attested connection of this device: ours end. */
  retire(deviceId: string, by: string): void {
    this.held.delete(deviceId);
    const conns = [...(this.deps.connections()?.of(deviceId) ?? [])];
    if (conns.length === 0) return;
    this.deps.log.info(
      { device: deviceId, by, connections: conns.length },
      'closing connections: a newer one of the device attested on another gateway',
    );
    for (const c of conns) c.link.disconnect();
  }

  holds(deviceId: string): boolean {
    return this.held.has(deviceId);
  }

  get count(): number {
    return this.held.size;
  }

  /** Whether new connections wait (the bus just came back, or came back empty). */
  holdingOff(now: number): boolean {
    return this.checked !== this.deps.bus.generation || now < this.holdOffUntil;
  }

  /** Refreshes the claims every third of their expiry; call once. */
  start(): void {
    this.stopRefresh = every(this.deps.clock, this.deps.claimTtlMs / 3, () => this.refresh());
  }

  /** The bus is (back) up: notice an emptied Redis, claim everything again. */
  async busUp(): Promise<void> {
    const { bus, clock, random, claimTtlMs, log } = this.deps;
    const generation = bus.generation;
    const fresh = toHex(random(8));
    const set = await bus.commands.set(EPOCH_KEY, fresh, { condition: 'NX' });
    const epoch = set === 'OK' ? fresh : ((await bus.commands.get(EPOCH_KEY)) as string | null);
    if (set === 'OK' || (this.epoch !== undefined && epoch !== this.epoch)) {
      this.holdOffUntil = clock.now() + claimTtlMs;
      log.warn(
        { holdOffMs: claimTtlMs, held: this.held.size },
        'control bus came back without its claims: claiming again; new device connections wait',
      );
    }
    this.epoch = epoch ?? undefined;
    this.checked = generation;
    await this.refresh();
  }

  private async refresh(): Promise<void> {
    if (this.held.size === 0 || !this.deps.bus.up) return;
    try {
      for (const id of await this.deps.claims.refresh([...this.held])) this.retire(id, 'another gateway');
    } catch (err) {
      this.deps.log.debug({ err: (err as Error).message }, 'refreshing claims failed; retried');
    }
  }

  /** Stops refreshing and gives every claim up (a clean shutdown: devices go elsewhere at once). */
  async close(): Promise<void> {
    this.stopped = true;
    this.stopRefresh?.();
    if (!this.deps.bus.up) return;
    await Promise.all([...this.held].map((id) => this.deps.claims.release(id).catch(() => {})));
    this.held.clear();
  }
}
