import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ErrorCode, ResultCode, RoundReason, Status } from '../shared/protocol/codes.ts';
import { writeFileAtomic } from './atomic-file.ts';

// What the running agent last knew, in `DIR/state.json`, for `vigil-agent status`, for operators
// reading it over SSH, and for monitoring. It is a report, not an input: the agent never decides
// anything from a state file left by an earlier run (the gateway is the judge of posture).

export const STATE_FILE = 'state.json';
export const STATE_VERSION = 1;

export type ConnectionState =
  | { readonly status: 'connecting'; readonly since: number; readonly attempt: number }
  | { readonly status: 'connected'; readonly since: number }
  | {
      readonly status: 'disconnected';
      readonly since: number;
      readonly reason: string;
      /** When the next attempt is scheduled (Unix ms). */
      readonly retryAt: number;
    }
  | { readonly status: 'stopped'; readonly since: number };

/** The last challenge this agent handled: answered with evidence, or refused without quoting. */
export type RoundRecord =
  | {
      readonly outcome: 'answered';
      readonly round: string;
      readonly reason: RoundReason;
      readonly at: number;
    }
  | {
      readonly outcome: 'refused';
      /** Hex round id, when the challenge was readable that far. */
      readonly round?: string;
      readonly at: number;
      readonly detail: string;
    };

export interface ResultRecord {
  readonly round: string;
  readonly status: Status;
  readonly reasons: readonly ResultCode[];
  /** Unix ms after which the gateway considers the posture stale unless re-attested. */
  readonly expires: number;
  readonly receivedAt: number;
}

export interface GatewayErrorRecord {
  readonly code: ErrorCode;
  readonly detail: string;
  readonly round?: string;
  readonly at: number;
}

export interface AgentState {
  readonly version: typeof STATE_VERSION;
  readonly deviceId: string;
  readonly ekHash: string;
  readonly gateway: string;
  readonly tpm: string;
  /** Process id of the agent that last wrote the state (absent for state written by `init`). */
  readonly pid?: number;
  readonly connection: ConnectionState;
  readonly lastRound?: RoundRecord;
  readonly lastResult?: ResultRecord;
  readonly lastError?: GatewayErrorRecord;
}

export class StateError extends Error {
  override readonly name = 'StateError';
}

export function readState(dir: string): AgentState | undefined {
  const file = join(dir, STATE_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StateError(`${file} cannot be read: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new StateError(
      `${file} is not valid JSON (${(e as Error).message}); the agent rewrites it when it runs`,
    );
  }
  const s = raw as Partial<AgentState> | null;
  if (
    s === null ||
    typeof s !== 'object' ||
    s.version !== STATE_VERSION ||
    typeof s.deviceId !== 'string' ||
    typeof s.connection !== 'object'
  ) {
    throw new StateError(
      `${file} is not a version ${STATE_VERSION} agent state; the agent rewrites it when it runs`,
    );
  }
  return s as AgentState;
}

export function writeState(dir: string, state: AgentState): void {
  // Only informational (status, operators): the rename keeps it whole for readers, and losing the
  // last update in a power cut costs nothing.
  writeFileAtomic(join(dir, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`, { durable: false });
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * Changes within this long are written as one: a round changes the state twice (answered, then
 * its result), and a file write with its rename costs more than the rest of the round's CPU.
 */
export const STATE_WRITE_DELAY_MS = 250;

/** The running agent's state: changed in memory, persisted shortly after every change. */
export class StateStore {
  #state: AgentState;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    readonly dir: string,
    initial: AgentState,
    /** Called when the file cannot be written; the agent keeps running on its in-memory state. */
    readonly onWriteError: (e: Error) => void = () => {},
  ) {
    this.#state = initial;
    this.#persist();
  }

  get current(): AgentState {
    return this.#state;
  }

  update(change: Partial<Omit<AgentState, 'version' | 'deviceId' | 'ekHash'>>): void {
    const next: Mutable<AgentState> = { ...this.#state, ...change };
    this.#state = next;
    this.#timer ??= setTimeout(() => this.flush(), STATE_WRITE_DELAY_MS).unref();
  }

  /** Writes a change not written yet (the agent stops). */
  flush(): void {
    if (this.#timer === undefined) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#persist();
  }

  #persist(): void {
    try {
      writeState(this.dir, this.#state);
    } catch (e) {
      this.onWriteError(e as Error);
    }
  }
}

/** The posture as the agent last heard it, with staleness judged at `now`. */
export function postureOf(s: AgentState, now: number): Status | 'stale' | 'unknown' {
  if (s.lastResult === undefined) return 'unknown';
  return s.lastResult.expires <= now ? 'stale' : s.lastResult.status;
}
