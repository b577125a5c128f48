import type { Clock } from '../../shared/clock.ts';
import type { Hello, LogOffsets, RoundReason } from '../../shared/protocol/index.ts';
import type { TpmPublic } from '../../shared/tpm/index.ts';
import { Pending } from './pending.ts';

/** What the gateway needs of one device's MQTT connection; the broker provides it. */
export interface DeviceLink {
  readonly clientId: string;
  readonly remoteAddress: string | undefined;
  /** B, the TLS exporter value of this connection for a nonce (PROTOCOL.md §4). */
  exporter(nonce: Uint8Array): Uint8Array;
  /** Writes a payload to this connection's `in` topic, to this connection only. */
  send(payload: Uint8Array): void;
  /** Ends the connection; `closed` follows from the broker. */
  disconnect(): void;
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
}

/**
 * Where a connection is in its life. `attesting`: hello accepted, no good appraisal yet (the
 * onboarding round is in flight, or failed). `attested`: an appraisal on this connection succeeded
 * at least once, so its later failures speak for the device and rounds and commands go here.
 * Whether application traffic flows is `trustedUntil`, which every appraisal moves.
 */
export type Phase = 'awaiting-hello' | 'attesting' | 'attested' | 'closed';

type State =
  | { readonly phase: 'awaiting-hello' }
  | { readonly phase: 'attesting' | 'attested'; readonly hello: HelloContext }
  | { readonly phase: 'closed'; readonly hello?: HelloContext };

/**
 * One device connection. Gating is per connection: a second connection of the same device is
 * judged on its own appraisals and can neither borrow nor spoil this one's trust. Features keep
 * their own per-connection state beside it (keyed by the connection), not in it.
 */
export class DeviceConnection {
  /** A connection is the `Peer` access.ts judges. */
  readonly kind = 'device';
  #state: State = { phase: 'awaiting-hello' };
  /** Until this Unix ms app traffic flows; 0 until this connection's first good appraisal. */
  trustedUntil = 0;
  readonly rounds: Pending<ActiveRound>;
  readonly connectedAt: number;

  constructor(
    readonly link: DeviceLink,
    readonly deviceId: string,
    clock: Clock,
    onRoundDeadline: (conn: DeviceConnection, round: ActiveRound) => void,
  ) {
    this.connectedAt = clock.now();
    this.rounds = new Pending(clock, (round) => onRoundDeadline(this, round));
  }

  get phase(): Phase {
    return this.#state.phase;
  }

  get clientId(): string {
    return this.link.clientId;
  }

  /** Set from the accepted hello on; kept after close for those who settle its rounds. */
  get hello(): HelloContext | undefined {
    return this.#state.phase === 'awaiting-hello' ? undefined : this.#state.hello;
  }

  get attested(): boolean {
    return this.#state.phase === 'attested';
  }

  get closed(): boolean {
    return this.#state.phase === 'closed';
  }

  /** awaiting-hello → attesting. */
  accept(hello: HelloContext): void {
    if (this.#state.phase !== 'awaiting-hello')
      throw new Error(`connection ${this.clientId}: hello accepted in phase ${this.#state.phase}`);
    this.#state = { phase: 'attesting', hello };
  }

  /** attesting → attested on a good appraisal (idempotent once attested). */
  attest(): void {
    if (this.#state.phase === 'attesting') this.#state = { phase: 'attested', hello: this.#state.hello };
  }

  /** Any phase → closed; returns the rounds that were in flight. */
  close(): ActiveRound[] {
    if (this.#state.phase === 'closed') return [];
    const hello = this.hello;
    this.#state = hello ? { phase: 'closed', hello } : { phase: 'closed' };
    this.trustedUntil = 0;
    return this.rounds.drain();
  }
}
