import type { Logger } from 'pino';
import { channelExporter } from '../shared/protocol/binding.ts';
import { decodeFromGateway, encodeMessage } from '../shared/protocol/envelope.ts';
import { ProtocolError } from '../shared/protocol/errors.ts';
import type {
  Challenge,
  Command,
  ErrorMessage,
  Evidence,
  GatewayMessage,
  Result,
} from '../shared/protocol/messages.ts';
import type { ChallengeHandler } from './challenge-handler.ts';
import type { Session } from './connection.ts';
import type { StateStore } from './state.ts';

// What the agent does with each message on its `in` topic: a challenge goes to the one handler
// and its evidence back on the same connection; a command goes to the rollout side (never queued
// behind a round, nor a round behind it); a result or error is logged and kept in the state file. Nothing a gateway sends can stop the agent: a message that does not decode is refused
// with one log line (nothing quoted), a round that fails is logged and the next one tried.

export interface InboxEvents {
  refused: [error: ProtocolError];
  challenge: [challenge: Challenge];
  evidence: [evidence: Evidence, challenge: Challenge];
  'round-failed': [error: Error, challenge: Challenge];
  result: [result: Result];
  'gateway-error': [error: ErrorMessage];
  command: [command: Command];
}

export type InboxEmit = <K extends keyof InboxEvents>(event: K, ...args: InboxEvents[K]) => void;

/** Where commands go, and who hears that a connection attested (device/update/link.ts). */
export interface CommandPort {
  command(c: Command, session: Session): void;
  attested(session: Session): void;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

export class Inbox {
  readonly #handler: ChallengeHandler;
  readonly #state: StateStore;
  readonly #logger: Logger;
  readonly #emit: InboxEmit;
  readonly #commands: CommandPort | undefined;
  /** Rounds run one after another, in arrival order; the TPM answers one command at a time anyway. */
  #rounds: Promise<void> = Promise.resolve();

  constructor(
    handler: ChallengeHandler,
    state: StateStore,
    logger: Logger,
    emit: InboxEmit,
    commands?: CommandPort,
  ) {
    this.#handler = handler;
    this.#state = state;
    this.#logger = logger;
    this.#emit = emit;
    this.#commands = commands;
  }

  /** Resolves when every round received so far has been answered or has failed. */
  idle(): Promise<void> {
    return this.#rounds;
  }

  receive(payload: Uint8Array, session: Session): void {
    let m: GatewayMessage;
    try {
      m = decodeFromGateway(payload);
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      this.#logger.warn(
        { code: e.code, detail: e.detail, bytes: payload.length },
        'refused a message from the gateway that is not valid vigil/1; nothing quoted, still connected',
      );
      this.#state.update({ lastRound: { outcome: 'refused', at: Date.now(), detail: e.message } });
      this.#emit('refused', e);
      return;
    }
    switch (m.t) {
      case 'challenge':
        this.#emit('challenge', m);
        this.#rounds = this.#rounds.then(() => this.#answer(m, session));
        return;
      case 'result':
        this.#result(m);
        // The gateway takes reports only from a connection that has attested.
        if (m.status === 'affirming' || m.status === 'warning') this.#commands?.attested(session);
        return;
      case 'command':
        this.#emit('command', m);
        this.#commands?.command(m, session);
        return;
      case 'error':
        this.#gatewayError(m);
        return;
    }
  }

  async #answer(c: Challenge, session: Session): Promise<void> {
    const round = hex(c.round);
    const started = performance.now();
    try {
      if (!session.open) throw new Error('the connection closed before the round started');
      const evidence = await this.#handler.handle(c, (nonce) => channelExporter(session.socket, nonce));
      await session.publish(encodeMessage(evidence));
      const ms = Math.round(performance.now() - started);
      this.#logger.info(
        {
          round,
          reason: c.reason,
          pcrs: c.pcrs,
          activate: c.activate !== undefined,
          ms,
          bytes: evidence.body.length,
        },
        'answered challenge',
      );
      this.#state.update({ lastRound: { outcome: 'answered', round, reason: c.reason, at: Date.now() } });
      this.#emit('evidence', evidence, c);
    } catch (e) {
      const err = e as Error;
      this.#logger.error(
        { round, reason: c.reason, err: err.message, kind: err.name },
        'could not answer challenge; the gateway will mark this round stale, the agent waits for the next',
      );
      this.#state.update({ lastRound: { outcome: 'refused', round, at: Date.now(), detail: err.message } });
      this.#emit('round-failed', err, c);
    }
  }

  #result(r: Result): void {
    const round = hex(r.round);
    const fields = {
      round,
      status: r.status,
      reasons: r.reasons,
      expires: new Date(r.expires).toISOString(),
    };
    if (r.status === 'affirming') this.#logger.info(fields, 'attestation result');
    else this.#logger.warn(fields, `attestation result: ${r.status}`);
    this.#state.update({
      lastResult: { round, status: r.status, reasons: r.reasons, expires: r.expires, receivedAt: Date.now() },
    });
    this.#emit('result', r);
  }

  #gatewayError(m: ErrorMessage): void {
    const round = m.round && hex(m.round);
    this.#logger.warn({ code: m.code, detail: m.detail, round }, 'the gateway reported an error');
    this.#state.update({
      lastError: { code: m.code, detail: m.detail, at: Date.now(), ...(round !== undefined && { round }) },
    });
    this.#emit('gateway-error', m);
  }
}
