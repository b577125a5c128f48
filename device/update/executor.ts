import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command, Report } from '../../shared/protocol/messages.ts';
import type { TrustedKey } from '../../shared/protocol/release-manifest.ts';
import { TreeMeasure } from '../../shared/release/tree-measure.ts';
import { toHex } from '../../shared/tpm/bytes.ts';
import { measureSoftware } from '../software.ts';
import type { SoftwareMeasurement } from '../software-log.ts';
import type { UpdateConfig } from './config.ts';
import { watchHealth } from './health.ts';
import { type Effect, type Event, type MachineContext, nextDue, step } from './machine.ts';
import { runCommand } from './run-command.ts';
import { Slots } from './slots.ts';
import { StagingFile } from './staging.ts';
import {
  readUpdateState,
  type SlotContent,
  type SlotName,
  UPDATE_STATE_VERSION,
  type UpdateState,
  writeUpdateState,
} from './state.ts';
import { unpackArchive } from './unpack.ts';

// Carries out what the update machine (machine.ts) decides, on the real file system, TPM and
// processes. Events are handled one at a time; for each, the new state is persisted first
// (write-ahead), then its effects run in order. An effect's result is handled at once, before the
// next command, so a chunk never overtakes the write of the one before it; the long effects (the
// health window, an operation's handler) run in the background and report back as events. All of
// it is asynchronous beside the agent's rounds: nothing here waits on the connection or the TPM
// except `record`, which goes through the agent's one TPM queue like a round does.
//
// Phase 2 drives it from the agent's inbox: `handle(command)` for each `command` message, and
// `report` sends each report on the connection once it has attested.

export const UPDATE_DIR = 'update';
/** The agent exits with this when it restarts itself into a new release (systemd `Restart=on-failure`). */
export const EXIT_RESTART = 75;

export interface ExecutorOptions {
  /** The agent's directory: the state and the staging file go to DIR/update/. */
  readonly dir: string;
  readonly config: UpdateConfig;
  /** Release keys pinned in agent.json. */
  readonly keys: readonly TrustedKey[];
  /** Extends swPcr with a measurement through the software log (SoftwareLog.record). */
  readonly record: (m: SoftwareMeasurement) => Promise<void>;
  /** Sends a report to the gateway (or queues it until the connection has attested). */
  readonly report: (r: Report) => void;
  /** How the agent exits to be restarted into a new release (default process.exit). */
  readonly exit?: (code: number) => void;
  readonly now?: () => number;
  /** Sees every event handled and every effect that failed (logging, tests). */
  readonly observe?: (what: { event?: Event; failed?: { effect: Effect['kind']; error: Error } }) => void;
}

/** The tree running once recovery has finished. */
export interface RunningTree {
  readonly slot: SlotName;
  readonly path: string;
  readonly content: SlotContent;
}

export class UpdateExecutor {
  readonly #o: ExecutorOptions;
  readonly #ctx: MachineContext;
  readonly #slots: Slots;
  readonly #staging: StagingFile;
  readonly #file: string;
  readonly #now: () => number;
  #state: UpdateState;
  #queue: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  readonly #background = new Set<Promise<void>>();
  readonly #abort = new AbortController();
  #closed = false;

  private constructor(o: ExecutorOptions, state: UpdateState, slots: Slots) {
    this.#o = o;
    this.#slots = slots;
    this.#state = state;
    this.#file = join(o.dir, UPDATE_DIR, 'state.json');
    this.#staging = new StagingFile(join(o.dir, UPDATE_DIR, 'staging.tar'));
    this.#now = o.now ?? Date.now;
    this.#ctx = {
      software: o.config.software.name,
      agent: o.config.software.agent,
      keys: o.keys,
      healthWindowMs: o.config.healthWindowMs,
      operations: new Set(Object.keys(o.config.operations)),
    };
  }

  /**
   * Loads the update state (creating it for the tree installed at provisioning), then recovers:
   * an interrupted switch is finished or undone, and what runs is measured into swPcr. Resolves
   * with the tree that runs.
   */
  static async open(o: ExecutorOptions): Promise<{ executor: UpdateExecutor; running: RunningTree }> {
    const slots = new Slots(o.config.software.slots);
    const current = slots.current();
    const file = join(o.dir, UPDATE_DIR, 'state.json');
    let state = readUpdateState(file);
    if (state === undefined) {
      const { name, version } = o.config.software;
      const m = measureSoftware({ name, version, root: slots.path(current) });
      state = {
        version: UPDATE_STATE_VERSION,
        current,
        slots: { [current]: { name, version, digest: toHex(m.digest) } },
        floors: {},
        operations: {},
        done: [],
        outbox: [],
      };
      await new StagingFile(join(o.dir, UPDATE_DIR, 'staging.tar')).reset(0);
      writeUpdateState(file, state);
    }
    const executor = new UpdateExecutor(o, state, slots);
    await executor.#dispatch({ kind: 'started', now: executor.#now(), current });
    return { executor, running: executor.running() };
  }

  get state(): UpdateState {
    return this.#state;
  }

  running(): RunningTree {
    const slot = this.#state.current;
    return { slot, path: this.#slots.path(slot), content: this.#state.slots[slot]! };
  }

  /** Handles a command from the gateway; resolves once it and what it set off directly are done. */
  handle(command: Command): Promise<void> {
    return this.#dispatch({ kind: 'command', now: this.#now(), command });
  }

  /** Resolves when nothing is queued and no background effect (health window, operation) runs. */
  async idle(): Promise<void> {
    for (;;) {
      await this.#queue;
      if (this.#background.size === 0) return;
      await Promise.all(this.#background);
    }
  }

  /** Stops timers and background effects; the persisted state stays for the next start. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#abort.abort();
    await Promise.allSettled([this.#queue, ...this.#background]);
  }

  #dispatch(e: Event): Promise<void> {
    const run = this.#queue.then(() => this.#process(e));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #process(first: Event): Promise<void> {
    const pending: Event[] = [first];
    while (pending.length > 0 && !this.#closed) {
      const e = pending.shift()!;
      this.#o.observe?.({ event: e });
      const { state, effects } = step(this.#state, e, this.#ctx);
      if (state !== this.#state) {
        writeUpdateState(this.#file, state);
        this.#state = state;
      }
      const results: Event[] = [];
      for (const effect of effects) {
        try {
          const result = await this.#run(effect);
          if (result) results.push(result);
        } catch (err) {
          const error = err instanceof Error ? err : new Error(String(err));
          this.#o.observe?.({ failed: { effect: effect.kind, error } });
          results.length = 0;
          results.push({
            kind: 'effect-failed',
            now: this.#now(),
            effect: effect.kind,
            detail: error.message,
          });
          break;
        }
      }
      pending.unshift(...results);
    }
    this.#arm();
  }

  /** One timer, for the earliest scheduled activation or operation. */
  #arm(): void {
    clearTimeout(this.#timer);
    const due = nextDue(this.#state);
    if (due === undefined || this.#closed) return;
    this.#timer = setTimeout(
      () => void this.#dispatch({ kind: 'timer', now: this.#now() }),
      Math.max(0, due - this.#now()),
    );
  }

  #inBackground(work: () => Promise<Event>): void {
    const p = work().then(
      (e) => (this.#closed ? undefined : this.#dispatch(e)),
      () => undefined,
    );
    const tracked = p.then(() => undefined).finally(() => this.#background.delete(tracked));
    this.#background.add(tracked);
  }

  async #run(effect: Effect): Promise<Event | undefined> {
    const now = () => this.#now();
    const cfg = this.#o.config;
    switch (effect.kind) {
      case 'report':
        this.#o.report(effect.report);
        return undefined;
      case 'reset-staging':
        await this.#staging.reset(effect.length);
        return undefined;
      case 'write-chunk': {
        const end = await this.#staging.write(effect.offset, effect.data);
        return { kind: 'chunk-stored', now: now(), stage: effect.stage, end };
      }
      case 'check-artifact':
        return { kind: 'artifact-checked', now: now(), stage: effect.stage, ...(await this.#staging.hash()) };
      case 'unpack': {
        this.#slots.discardIncoming();
        const measure = new TreeMeasure();
        await unpackArchive(this.#staging.file, this.#slots.incoming, {
          limit: statSync(this.#staging.file).size,
          onEvent: (e) => measure.add(e),
        });
        const digest = toHex(measure.digest(effect.name, effect.version));
        return { kind: 'unpacked', now: now(), stage: effect.stage, digest };
      }
      case 'place-unpacked':
        this.#slots.placeIncoming(effect.slot);
        return { kind: 'placed', now: now(), stage: effect.stage };
      case 'discard-unpacked':
        this.#slots.discardIncoming();
        return undefined;
      case 'clear-slot':
        this.#slots.clear(effect.slot);
        return undefined;
      case 'record': {
        // Measured from the files in the slot, not taken from the manifest: the log says what is
        // really there, and a tree changed since staging shows up as a digest the gateway refuses.
        const m = measureSoftware({
          name: effect.name,
          version: effect.version,
          root: this.#slots.path(effect.slot),
        });
        await this.#o.record({ name: m.name, version: m.version, digest: m.digest });
        return undefined;
      }
      case 'switch':
        this.#slots.switchTo(effect.slot);
        return { kind: 'switched', now: now(), slot: effect.slot };
      case 'restart': {
        if (cfg.software.agent) {
          (this.#o.exit ?? process.exit)(EXIT_RESTART);
          return undefined;
        }
        const r = await runCommand(cfg.software.restart, { timeoutMs: cfg.commandTimeoutMs });
        if (!r.ok) throw new Error(`restart: ${r.detail}`);
        return undefined;
      }
      case 'watch-health':
        this.#inBackground(async () => {
          const verdict = await watchHealth({
            ...(cfg.software.health && { probe: cfg.software.health }),
            windowMs: effect.windowMs,
            intervalMs: cfg.healthIntervalMs,
            timeoutMs: cfg.commandTimeoutMs,
            signal: this.#abort.signal,
          });
          return { kind: 'health', now: now(), activate: effect.activate, ...verdict };
        });
        return undefined;
      case 'run-operation': {
        const handler = cfg.operations[effect.name]!;
        const op = this.#state.operations[effect.id];
        this.#inBackground(async () => {
          const r = await runCommand(handler.run, {
            timeoutMs: handler.timeoutMs,
            // The args as CBOR on stdin; the token lets the handler (or whoever it talks to) check
            // with the gateway's EAR key that the swarm had converged (operate-token.ts).
            input: Buffer.from(effect.args, 'hex'),
            env: {
              VIGIL_OPERATION: effect.name,
              VIGIL_COMMAND_ID: effect.id,
              VIGIL_OPERATE_TOKEN: effect.token,
              VIGIL_OPERATE_AT: String(op?.at ?? now()),
            },
          });
          return { kind: 'operation-finished', now: now(), id: effect.id, ...r };
        });
        return undefined;
      }
    }
  }
}
