import type { Clock } from '../../shared/clock.ts';
import type { DeviceConnection } from '../connections/device-connection.ts';
import type { RoundRecord } from '../model.ts';
import { outstanding, sendable } from './machine.ts';
import type { InFlight, Member, Rollout } from './model.ts';

// What a gateway sends to the members whose attested connection it holds, read from a rollout's
// state: every command in flight, once per connection (a new connection, after a reconnection or
// a restart, gets them again under the same ids; a device answers a repeated id with the state it
// reached). For a copy of a rollout another gateway owns, also the swarm rounds its verifying
// members need: the owner cannot ask them, the gateway holding the connection does.

export interface DeliveryDeps {
  /** The member's attested connection, while its posture is fresh and good. */
  readonly askable: (device: string) => DeviceConnection | undefined;
  readonly send: (conn: DeviceConnection, r: Rollout, id: string, f: InFlight) => void;
  /** Whether the rollout is a copy of another gateway's (its verifying members' rounds are asked here). */
  readonly copy: (rollout: string) => boolean;
  /** Issues a `swarm` round on the connection (or leaves the one in flight). */
  readonly startRound: (conn: DeviceConnection) => void;
  readonly clock: Clock;
}

/** Whether a settled round decides a verifying member's convergence (machine.ts onRound). */
export function decides(round: RoundRecord, m: Member): boolean {
  return (
    m.activatedAt !== undefined &&
    round.reason === 'swarm' &&
    round.issuedAt >= m.activatedAt &&
    round.state === 'appraised'
  );
}

export class Delivery {
  /** Command ids sent on each connection. */
  readonly #sent = new WeakMap<DeviceConnection, Set<string>>();
  /** Swarm rounds asked on each connection for members of copies, by rollout and activation. */
  readonly #asked = new WeakMap<DeviceConnection, Set<string>>();

  constructor(private readonly d: DeliveryDeps) {}

  /**
   * Sends the rollout's commands in flight to the members held here (`again`: once more, for a
   * device to repeat a report that may have been lost) and, for a copy, asks the swarm rounds of
   * its verifying members held here. One pass over what is in flight: a step of a large swarm
   * costs its commands, not its members times its commands.
   */
  rollout(r: Rollout, again = false): void {
    const now = this.d.clock.now();
    const conns = new Map<string, DeviceConnection | undefined>();
    const connOf = (device: string) => {
      if (!conns.has(device)) conns.set(device, this.d.askable(device));
      return conns.get(device);
    };
    for (const [id, f] of Object.entries(r.inflight)) {
      const conn = connOf(f.member);
      if (conn && sendable(r, f, now)) this.#once(conn, r, id, f, again);
    }
    if (!this.d.copy(r.spec.id)) return;
    for (const m of Object.values(r.members)) {
      const conn = m.state === 'verifying' ? connOf(m.id) : undefined;
      if (conn) this.#askSwarm(r, m, conn);
    }
  }

  /** A member became fresh and good on `conn`: what is in flight for it goes out there. */
  member(r: Rollout, device: string, conn: DeviceConnection): void {
    for (const [id, f] of outstanding(r, device, this.d.clock.now())) this.#once(conn, r, id, f, false);
    const m = r.members[device];
    if (m && this.d.copy(r.spec.id)) this.#askSwarm(r, m, conn);
  }

  /** A round of a copy's member held here settled: one that cannot decide it is asked again. */
  roundSettled(r: Rollout, round: RoundRecord): void {
    const m = r.members[round.deviceId];
    if (m?.state !== 'verifying' || decides(round, m)) return;
    const conn = this.d.askable(round.deviceId);
    if (conn) this.d.startRound(conn);
  }

  #once(conn: DeviceConnection, r: Rollout, id: string, f: InFlight, again: boolean): void {
    const sent = this.#sent.get(conn) ?? new Set<string>();
    this.#sent.set(conn, sent);
    if (sent.has(id) && !again) return;
    sent.add(id);
    this.d.send(conn, r, id, f);
  }

  /** A member verifying on a connection here needs a swarm round after its activation, once. */
  #askSwarm(r: Rollout, m: Member, conn: DeviceConnection): void {
    if (m.state !== 'verifying' || m.activatedAt === undefined) return;
    const key = `${r.spec.id} ${m.activatedAt}`;
    const asked = this.#asked.get(conn) ?? new Set<string>();
    this.#asked.set(conn, asked);
    if (asked.has(key)) return;
    asked.add(key);
    this.d.startRound(conn);
  }
}
