import type { Logger } from 'pino';
import type { DeviceConnection } from './device-connection.ts';
import type { Connections } from './registry.ts';
import type { Replies } from './replies.ts';

// A device id is public (a hash of the EK), so anyone can open connections under it. Its number of
// live connections is bounded (policy connections.perDevice), and which one gives way at the bound
// matters: never the attested one, since that is the device itself. The oldest unattested one
// goes, so that an honest device that reconnects gets in even when connections it left behind (or
// an attacker's) fill its quota: one that never said hello first, then one that said hello and has
// not attested. Only when every connection is attested is the newcomer refused.

export type Room =
  | { readonly kind: 'room' }
  | { readonly kind: 'evict'; readonly conn: DeviceConnection }
  | { readonly kind: 'full' };

/** What to do for one more connection of a device with `live` connections (oldest first). */
export function roomFor(live: readonly DeviceConnection[], limit: number): Room {
  if (live.length < limit) return { kind: 'room' };
  const victim = live.find((c) => c.phase === 'awaiting-hello') ?? live.find((c) => c.phase === 'attesting');
  return victim ? { kind: 'evict', conn: victim } : { kind: 'full' };
}

/** Keeps each device within its connection limit, closing the connection roomFor chooses. */
export class DeviceRooms {
  /** Connections closed to make room, until their close arrives. */
  readonly #leaving = new WeakSet<DeviceConnection>();

  constructor(
    private readonly connections: Connections,
    private readonly replies: Replies,
    private readonly log: Logger,
  ) {}

  /**
   * Makes room for one more connection of `deviceId` under `limit`; returns why there is none
   * (every connection attested). `evicted` is called when a connection was closed for it.
   */
  makeRoom(deviceId: string, limit: number, evicted: () => void): string | undefined {
    const room = roomFor(
      this.connections.of(deviceId).filter((c) => !this.#leaving.has(c)),
      limit,
    );
    if (room.kind === 'full')
      return `device ${deviceId} has ${limit} attested connections (connections.perDevice): try again once one has gone`;
    if (room.kind === 'evict') {
      this.#leaving.add(room.conn);
      evicted();
      this.log.info(
        { device: deviceId, client: room.conn.clientId },
        'closing an unattested connection to make room for a newer one',
      );
      this.replies.refuseConnection(
        room.conn,
        'quota-exceeded',
        `device ${deviceId} is at its ${limit} connections (connections.perDevice): this one, the oldest not attested, is closed for a newer one`,
      );
    }
    return undefined;
  }
}
