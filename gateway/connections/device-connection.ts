import type { TLSSocket } from 'node:tls';
import type { Client } from 'aedes';
import type { Hello, LogOffsets, RoundReason } from '../../shared/protocol/index.ts';
import type { TpmPublic } from '../../shared/tpm/index.ts';

/** A round in flight on one connection; the secret parts never leave memory. */
export interface ActiveRound {
  readonly id: string;
  readonly nonce: Uint8Array;
  readonly exporter: Uint8Array;
  readonly pcrs: readonly number[];
  /** The log offsets the challenge asked for. */
  readonly logs: LogOffsets;
  readonly reason: RoundReason;
  readonly batchId?: string;
  readonly issuedAt: number;
  readonly deadlineAt: number;
  /** The credential the device must recover, when the round carries `activate`. */
  readonly activation?: Uint8Array;
  /** The AK this round appraises: enrolled, or the candidate of `activation`. */
  readonly akPublicArea: Uint8Array;
  timer?: NodeJS.Timeout;
}

/** What `hello` established on this connection, once identity and admission passed. */
export interface HelloContext {
  readonly hello: Hello;
  readonly ek: TpmPublic;
  readonly ekName: Uint8Array;
  readonly ekHash: string;
  readonly ak: TpmPublic;
  readonly genuineHardware: boolean;
}

/** How many settled round ids a connection remembers, to answer "replayed"/"expired" not "unknown". */
const REMEMBERED_ROUNDS = 32;

export type Settlement = 'answered' | 'expired';

/**
 * One device connection. Gating is per connection: a second connection of the same device is
 * judged on its own appraisals and can neither borrow nor spoil this one's trust.
 */
export class DeviceSession {
  /** A session is the `Peer` access.ts judges. */
  readonly kind = 'device';
  hello?: HelloContext;
  /** Until this Unix ms app traffic flows; 0 until this connection's first good appraisal. */
  trustedUntil = 0;
  /** Whether any appraisal on this connection succeeded: its later failures speak for the device. */
  attested = false;
  readonly rounds = new Map<string, ActiveRound>();
  private readonly settled = new Map<string, Settlement>();
  periodic?: NodeJS.Timeout | undefined;
  /** Whether the first (phase-spreading) periodic delay was used already. */
  periodicStarted = false;
  closed = false;
  readonly connectedAt = Date.now();

  constructor(
    readonly client: Client,
    readonly socket: TLSSocket,
    readonly deviceId: string,
  ) {}

  get clientId(): string {
    return this.client.id;
  }

  /** Moves a round from in flight to settled, remembering how. */
  settle(roundId: string, how: Settlement): void {
    const r = this.rounds.get(roundId);
    if (r?.timer) clearTimeout(r.timer);
    this.rounds.delete(roundId);
    this.settled.set(roundId, how);
    if (this.settled.size > REMEMBERED_ROUNDS) this.settled.delete(this.settled.keys().next().value!);
  }

  settledAs(roundId: string): Settlement | undefined {
    return this.settled.get(roundId);
  }

  close(): void {
    this.closed = true;
    for (const r of this.rounds.values()) if (r.timer) clearTimeout(r.timer);
    if (this.periodic) clearTimeout(this.periodic);
  }
}
