import type { Clock, Timer } from '../../shared/clock.ts';
import type { DeviceConnection } from '../connections/device-connection.ts';

// Periodic re-attestation on the same connection. The first delay after a connection attests is
// spread over half an interval, so that devices which connected together (a gateway restart) do
// not stay in step; every later one is scaled by ±jitter.

export interface PeriodicTiming {
  readonly periodicMs: number;
  readonly jitter: number;
}

export class PeriodicRounds {
  readonly #timers = new WeakMap<DeviceConnection, Timer>();
  /** Connections whose phase-spreading first delay was used. */
  readonly #spread = new WeakSet<DeviceConnection>();

  constructor(
    private readonly clock: Clock,
    private readonly timing: () => PeriodicTiming,
    private readonly startRound: (conn: DeviceConnection) => void,
    /** Uniform in [0, 1). */
    private readonly uniform: () => number = Math.random,
  ) {}

  /** Arms the next periodic round unless one is armed already or the connection is gone. */
  schedule(conn: DeviceConnection): void {
    if (conn.closed || this.#timers.has(conn)) return;
    const { periodicMs, jitter } = this.timing();
    const first = conn.attested && !this.#spread.has(conn);
    if (first) this.#spread.add(conn);
    const factor = first ? 0.5 + this.uniform() * 0.5 : 1 + (this.uniform() * 2 - 1) * jitter;
    this.#timers.set(
      conn,
      this.clock.after(periodicMs * factor, () => {
        this.#timers.delete(conn);
        this.startRound(conn);
      }),
    );
  }

  cancel(conn: DeviceConnection): void {
    this.#timers.get(conn)?.cancel();
    this.#timers.delete(conn);
  }
}
