import type { Logger } from 'pino';
import type { Clock } from '../../shared/clock.ts';
import { type ErrorCode, encodeMessage, type GatewayMessage } from '../../shared/protocol/index.ts';
import type { DeviceConnection } from './device-connection.ts';

// Everything the gateway says to a device goes through here: to that one connection, encoded
// once. Refusals are logged, but a device that keeps sending what is refused cannot fill the
// gateway's disk: per connection, refusals are logged in full for the first few, then counted
// and summarised once a minute.

const LOGGED_PER_WINDOW = 5;
const WINDOW_MS = 60_000;

export class Replies {
  readonly #logged = new WeakMap<DeviceConnection, { windowStart: number; count: number }>();

  constructor(
    private readonly log: Logger,
    private readonly clock: Clock,
  ) {}

  send(conn: DeviceConnection, message: GatewayMessage): void {
    if (!conn.closed) conn.link.send(encodeMessage(message));
  }

  /** Answers `error` on this connection; nothing else changes. */
  refuse(conn: DeviceConnection, code: ErrorCode, detail: string, round?: Uint8Array): void {
    this.note(conn, code, detail);
    this.send(conn, { t: 'error', code, detail, ...(round && { round }) });
  }

  /** Refuses the connection for good: the error first, then the disconnect once it is written. */
  refuseConnection(conn: DeviceConnection, code: ErrorCode, detail: string): void {
    this.refuse(conn, code, detail);
    setImmediate(() => conn.link.disconnect());
  }

  private note(conn: DeviceConnection, code: ErrorCode, detail: string): void {
    const now = this.clock.now();
    let w = this.#logged.get(conn);
    if (!w || now - w.windowStart >= WINDOW_MS) {
      if (w && w.count > LOGGED_PER_WINDOW)
        this.log.warn(
          { device: conn.deviceId, client: conn.clientId, suppressed: w.count - LOGGED_PER_WINDOW },
          'refusals not logged in the last window',
        );
      w = { windowStart: now, count: 0 };
      this.#logged.set(conn, w);
    }
    w.count++;
    if (w.count <= LOGGED_PER_WINDOW)
      this.log.info({ device: conn.deviceId, client: conn.clientId, code, detail }, 'refused');
  }
}
