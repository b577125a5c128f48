// A rollout as the gateway keeps it (PROTOCOL.md §6.4): a swarm's members taken at the start,
// moved to one release in waves, each member's progress decided from its reports and, for
// convergence, only from appraised quotes. Plain data, so that the whole state is stored after
// every step and a restarted gateway resumes exactly where it was.

/** A number of members, absolute or as a share of the swarm (rounded up). */
export type Quota =
  | { readonly kind: 'count'; readonly n: number }
  | { readonly kind: 'share'; readonly percent: number };

export interface RolloutSpec {
  readonly id: string;
  /** The label selector that chose the swarm (`key=value`). */
  readonly swarm: string;
  readonly release: {
    readonly name: string;
    readonly version: string;
    readonly seq: number;
    /** Hex SHA-256 of the software manifest of the installed tree: what a quote must show. */
    readonly digest: string;
  };
  /** Cumulative sizes of the waves; the last reaches the whole swarm. */
  readonly waves: readonly Quota[];
  /** Share of a wave's members that must converge before the next wave starts. */
  readonly successPercent: number;
  /** The rollout aborts when failures exceed this share of finished members, after `min` finished. */
  readonly abort: { readonly percent: number; readonly min: number };
  /** The barrier: converged members (fresh and good) needed before an operation is released. */
  readonly barrier: Quota | { readonly kind: 'all' };
  /** Members the barrier always requires. */
  readonly required: readonly string[];
  readonly timeouts: {
    /** From `stage` sent to `staged` reported (download and verification included). */
    readonly stageMs: number;
    /** From `activate` sent to convergence shown by a quote (restart and health window included). */
    readonly activateMs: number;
    /** For `commit`, `rollback` and `cancel` to be reported, and for an operation after its `at`. */
    readonly commandMs: number;
  };
  readonly createdAt: number;
}

export type MemberState =
  /** In a wave that has not started. */
  | 'waiting'
  /** `stage` sent: the device checks the manifest and fetches the artifact. */
  | 'staging'
  /** It reported `staged` while the rollout was paused: activated on resume. */
  | 'staged'
  /** `activate` sent after it reported `staged`. */
  | 'activating'
  /** It reported `activated`: a swarm round must show the digest. */
  | 'verifying'
  | 'converged'
  | 'failed'
  | 'rolled-back'
  /** No attested connection in good standing when it was to be asked; it joins a trailing wave. */
  | 'absent'
  | 'committed';

export interface Member {
  readonly id: string;
  /**
   * The wave it belongs to. `Rollout.waves` is the trailing wave: members absent when their wave
   * started, once back, and devices that joined the swarm after the start.
   */
  readonly wave: number;
  readonly state: MemberState;
  /** A code of PROTOCOL.md §6.3 or §6.5 for failed, rolled-back and absent members. */
  readonly code?: string;
  readonly detail?: string;
  /** When the current step fails if not done. */
  readonly deadlineAt?: number;
  /** The `stage` or `activate` command the member is on: resent with the same id after a restart. */
  readonly command?: { readonly id: string; readonly op: 'stage' | 'activate' | 'commit' | 'rollback' };
  /** When `activate` was sent: a round issued before it proves nothing about the new tree. */
  readonly activatedAt?: number;
  /** The digest of `name` in the member's last appraised software log. */
  readonly measured?: string;
}

export type RolloutPhase =
  | 'running'
  | 'paused'
  | 'aborted'
  | 'cancelled'
  /** Every member finished; the barrier is judged live whenever an operation is asked. */
  | 'completed'
  | 'rolling-back'
  | 'rolled-back'
  | 'committed';

/** What a device reported on a command, as the rollout records it. */
export interface Outcome {
  readonly state: string;
  readonly code?: string;
  readonly detail?: string;
}

export interface Operation {
  readonly id: string;
  readonly name: string;
  readonly at: number;
  /** The token's expiry (Unix ms). */
  readonly exp: number;
  /** The operation's args, CBOR, hex: sent to each member as they are. */
  readonly args: string;
  /** The operate token (PROTOCOL.md §6.2), hex: the gateway's signed statement that the barrier held. */
  readonly token: string;
  /** Members told, with the command id of their `operate`. */
  readonly told: Readonly<Record<string, string>>;
  /** The `cancel` sent to each member told, when the barrier broke before `at`. */
  readonly cancels?: Readonly<Record<string, string>>;
  /** What each member told reported (done, failed, cancelled), or timed-out. */
  readonly results: Readonly<Record<string, Outcome>>;
  readonly state: 'released' | 'cancelled' | 'done';
  readonly reasons?: readonly string[];
}

/** A command the rollout sent, as the executor builds it. */
export type CommandEffect =
  | { readonly op: 'stage' }
  | { readonly op: 'activate'; readonly at: number }
  | { readonly op: 'commit' }
  | { readonly op: 'rollback' }
  | { readonly op: 'cancel'; readonly command: string }
  | { readonly op: 'operate'; readonly operation: string; readonly name: string; readonly at: number };

/**
 * A command sent and not yet answered by a report that ends it. Kept in the rollout itself, so that
 * a restarted gateway sends it again with the same id (the device answers a repeated id with the
 * state reached, never acting twice) and knows a late report from an unknown one.
 */
export interface InFlight {
  readonly member: string;
  readonly command: CommandEffect;
  /** When the device must have reported the outcome (also the command's `deadline`). */
  readonly deadlineAt: number;
}

export interface Rollout {
  readonly spec: RolloutSpec;
  readonly phase: RolloutPhase;
  /** Why it is paused or aborted, for operators. */
  readonly why?: string;
  /** Planned waves; a member in wave `waves` is in the trailing wave. */
  readonly waves: number;
  /** Planned waves started so far (the current wave is `wavesStarted - 1`). */
  readonly wavesStarted: number;
  readonly members: Readonly<Record<string, Member>>;
  readonly operations: readonly Operation[];
  /** Commands sent and not yet answered, by command id. */
  readonly inflight: Readonly<Record<string, InFlight>>;
  readonly updatedAt: number;
}

/** States a member does not leave by itself. */
export const FINISHED: ReadonlySet<MemberState> = new Set([
  'converged',
  'failed',
  'rolled-back',
  'committed',
]);
export const FAILED: ReadonlySet<MemberState> = new Set(['failed', 'rolled-back']);

/**
 * Phases in which a rollout holds its swarm: no other rollout may start on it or its members. An
 * aborted rollout holds it until an operator rolls it back or cancels it: its members may run the
 * release, and a rollback sent later must not land in another rollout.
 */
export const HOLDING: ReadonlySet<RolloutPhase> = new Set([
  'running',
  'paused',
  'completed',
  'aborted',
  'rolling-back',
]);

/** Phases after which a rollout needs nothing more unless an operator acts on it. */
export const ENDED: ReadonlySet<RolloutPhase> = new Set(['cancelled', 'rolled-back', 'committed']);

/** Whether a rollout still needs an engine: not ended, or commands of it still in flight. */
export function needsEngine(r: Rollout): boolean {
  return !ENDED.has(r.phase) || Object.keys(r.inflight).length > 0;
}
