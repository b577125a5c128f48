import type { Logger } from 'pino';
import { encodeMessage } from '../../shared/protocol/envelope.ts';
import type { Command, Report, SoftwareClaim } from '../../shared/protocol/messages.ts';
import { toHex } from '../../shared/tpm/bytes.ts';
import type { Session } from '../connection.ts';

// The agent's side of rollouts on the wire: each `command` from the gateway to the update executor
// (or, on a device without update.json, a `failed` `unsupported` answer), and the reports back on
// `out`, but only on a connection that has attested: the gateway takes a report from nowhere else
// (PROTOCOL.md §6.3). A report made while no attested connection is there (during a restart into a
// new release, between connections) waits here, the newest per command, and goes out once the next
// connection attested. Nothing here waits on a round, nor a round on anything here.

/** What handles commands: the update executor. */
export interface CommandHandler {
  handle(command: Command): Promise<void>;
}

export class UpdateLink {
  readonly #logger: Logger;
  readonly #software: () => SoftwareClaim;
  readonly #sent: (report: Report) => void;
  /** Reports not yet sent, by command id, oldest first. */
  readonly #outbox = new Map<string, Report>();
  #handler: CommandHandler | undefined;
  #attested: Session | undefined;

  constructor(opts: {
    readonly logger: Logger;
    /** What runs now, for the `sw` claim of the answers made here. */
    readonly software: () => SoftwareClaim;
    /** Hears every report published (events, tests). */
    readonly sent?: (report: Report) => void;
  }) {
    this.#logger = opts.logger;
    this.#software = opts.software;
    this.#sent = opts.sent ?? (() => {});
  }

  /** The executor, once opened; until then (and without update.json) commands are unsupported. */
  use(handler: CommandHandler): void {
    this.#handler = handler;
  }

  /** A `command` arrived on `session`. */
  command(c: Command, _session: Session): void {
    const id = toHex(c.id);
    if (this.#handler) {
      this.#handler
        .handle(c)
        .catch((err: Error) =>
          this.#logger.error({ command: id, op: c.op, err: err.message }, 'handling a command failed'),
        );
      return;
    }
    if (c.op === 'chunk') return; // bytes for a staging this device never started
    this.report({
      t: 'report',
      command: c.id,
      state: 'failed',
      code: 'unsupported',
      sw: this.#software(),
      detail: 'this device has no update.json: it updates no software and runs no operations',
    });
  }

  /** `session` attested (its first good result): what waited goes out on it. */
  attested(session: Session): void {
    this.#attested = session;
    const waiting = [...this.#outbox.values()];
    this.#outbox.clear();
    for (const r of waiting) this.report(r);
  }

  /** Sends a report on the attested connection, or keeps it until there is one. */
  report(r: Report): void {
    const session = this.#attested;
    const id = toHex(r.command);
    if (session?.open !== true) {
      this.#outbox.delete(id);
      this.#outbox.set(id, r);
      return;
    }
    session.publish(encodeMessage(r)).then(
      () => {
        // One line per outcome; a staging's many `fetching` reports only at debug.
        this.#logger[r.state === 'fetching' ? 'debug' : 'info'](
          { command: id, state: r.state, code: 'code' in r ? r.code : undefined },
          'reported',
        );
        this.#sent(r);
      },
      () => {
        // The connection closed under it: the next attested one carries it.
        if (!this.#outbox.has(id)) this.#outbox.set(id, r);
      },
    );
  }

  /** Reports waiting for an attested connection. */
  get waiting(): number {
    return this.#outbox.size;
  }
}
