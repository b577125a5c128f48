import type { Logger } from 'pino';
import type { Clock } from '../../shared/clock.ts';
import { type ErrorCode, encodeMessage, type GatewayMessage } from '../../shared/protocol/index.ts';
import type { DeviceConnection } from './device-connection.ts';
import { LogBudget } from './log-budget.ts';

// Everything the gateway says to a device goes through here: to that one connection, encoded
// once. Refusals are logged, but a device that keeps sending what is refused cannot fill the
// gateway's disk: per connection, refusals are logged within a budget (log-budget.ts).

export class Replies {
  readonly #budget: LogBudget<DeviceConnection>;

  constructor(
    private readonly log: Logger,
    clock: Clock,
  ) {
    this.#budget = new LogBudget(clock, (conn, suppressed) =>
      log.warn(
        { device: conn.deviceId, client: conn.clientId, suppressed },
        'refusals not logged in the last window',
      ),
    );
  }

  send(conn: DeviceConnection, message: GatewayMessage): void {
    if (!conn.closed) conn.link.send(encodeMessage(message));
  }

  /** Answers `error` on this connection; nothing else changes. */
  refuse(conn: DeviceConnection, code: ErrorCode, detail: string, round?: Uint8Array): void {
    if (this.#budget.take(conn))
      this.log.info({ device: conn.deviceId, client: conn.clientId, code, detail }, 'refused');
    this.send(conn, { t: 'error', code, detail, ...(round && { round }) });
  }

  /** Refuses the connection for good: the error first, then the disconnect once it is written. */
  refuseConnection(conn: DeviceConnection, code: ErrorCode, detail: string): void {
    this.refuse(conn, code, detail);
    setImmediate(() => conn.link.disconnect());
  }
}
