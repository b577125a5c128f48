import type { ReportCode } from '../../shared/protocol/codes.ts';
import type { ReportState } from '../../shared/protocol/messages.ts';
import { writeFileAtomic } from '../atomic-file.ts';
import { readJsonFile } from '../json-file.ts';

// What the device remembers of updates, in DIR/update/state.json: the committed floor per
// software, what each slot holds, the update in progress, scheduled operations, and the outcome of
// recent commands. It is written (fsync'd, renamed into place) before any effect of a transition
// runs, so that after a power cut at any point the recovery at the next start (machine.ts,
// `started`) knows what may have happened and finishes or undoes it. Ids and digests are hex.

export const UPDATE_STATE_VERSION = 1;
/** Outcomes kept for answering a repeated command id with the state it reached. */
export const DONE_KEPT = 64;

export type SlotName = 'a' | 'b';
export const SLOT_NAMES: readonly SlotName[] = ['a', 'b'];
export const otherSlot = (s: SlotName): SlotName => (s === 'a' ? 'b' : 'a');

/** A tree as a slot holds it. */
export interface SlotContent {
  readonly name: string;
  readonly version: string;
  /** Software manifest digest, hex. */
  readonly digest: string;
  /** The release's seq; absent for the tree installed at provisioning. */
  readonly seq?: number;
}

/** A release being staged: what its signed manifest said. */
export interface StagedRelease extends Required<SlotContent> {
  readonly size: number;
  /** Artifact SHA-256, hex. */
  readonly sha256: string;
  readonly healthWindowMs?: number;
  /** SHA-256 of the signed manifest: the same release staged again under a new command id. */
  readonly manifest: string;
}

interface Staging {
  /** The `stage` command: every report of the staging names it. */
  readonly stage: string;
  readonly rollout: string;
  readonly release: StagedRelease;
  /** The inactive slot the release goes to. */
  readonly slot: SlotName;
}

interface Switching {
  readonly stage: string;
  readonly activate: string;
  readonly release: StagedRelease;
  readonly from: SlotName;
  readonly to: SlotName;
}

export type Job =
  /** Artifact bytes [0, offset) are in the staging file. */
  | ({ readonly phase: 'fetching'; readonly offset: number } & Staging)
  /** The artifact is complete: being checked and unpacked into `slot`. */
  | ({ readonly phase: 'unpacking' } & Staging)
  | ({
      readonly phase: 'staged';
      /** An `activate` waiting for its `at`. */
      readonly activate?: { readonly id: string; readonly at: number };
    } & Staging)
  /** Write-ahead of the switch: measured into swPcr and `current` moved to `to`, or about to be. */
  | ({ readonly phase: 'activating' } & Switching)
  /** Switched and restarted; being watched since `since`. */
  | ({
      readonly phase: 'health';
      readonly since: number;
      /** The agent exits to be restarted into the new tree: its next start continues the watch. */
      readonly plannedRestart: boolean;
    } & Switching)
  /** Healthy; waits for commit or rollback. */
  | ({ readonly phase: 'activated' } & Switching)
  /** Going back to `from`: measured, switched, restarted, then reported on `command`. */
  | {
      readonly phase: 'rolling-back';
      readonly command: string;
      readonly from: SlotName;
      readonly to: SlotName;
      readonly code?: ReportCode;
      readonly detail: string;
    };

export interface ScheduledOperation {
  readonly name: string;
  /** CBOR of the operation's args, hex (handed to the handler as is). */
  readonly args: string;
  /** The operate token, hex. */
  readonly token: string;
  readonly at: number;
  /** `running` is written before the handler starts: after a crash it is not run again. */
  readonly phase: 'scheduled' | 'running';
}

/** What a command came to, as reported. */
export interface Outcome {
  readonly state: ReportState;
  readonly code?: ReportCode;
  readonly detail?: string;
}

export interface UpdateState {
  readonly version: typeof UPDATE_STATE_VERSION;
  /** The slot `current` points to once every switch is complete. */
  readonly current: SlotName;
  readonly slots: Readonly<Partial<Record<SlotName, SlotContent>>>;
  /** Committed seq (and digest) per software name: nothing below is ever staged. */
  readonly floors: Readonly<Record<string, { readonly seq: number; readonly digest: string }>>;
  readonly job?: Job;
  readonly operations: Readonly<Record<string, ScheduledOperation>>;
  /** Newest last, at most DONE_KEPT. */
  readonly done: readonly ({ readonly id: string } & Outcome)[];
  /** Command ids whose outcome must be reported again after a restart (the agent restarted itself). */
  readonly outbox: readonly string[];
}

export class UpdateStateError extends Error {
  override readonly name = 'UpdateStateError';
}

export function readUpdateState(file: string): UpdateState | undefined {
  const s = readJsonFile(file, UpdateStateError, 'restore it from a backup; its floors stop downgrades') as
    | Partial<UpdateState>
    | undefined;
  if (s === undefined) return undefined;
  // Written only by writeUpdateState (atomically), so a wrong shape means someone else wrote it:
  // refused, not repaired, since the floors in it are what stops a downgrade.
  if (
    s === null ||
    typeof s !== 'object' ||
    s.version !== UPDATE_STATE_VERSION ||
    (s.current !== 'a' && s.current !== 'b') ||
    typeof s.floors !== 'object' ||
    typeof s.slots !== 'object' ||
    typeof s.operations !== 'object' ||
    !Array.isArray(s.done) ||
    !Array.isArray(s.outbox)
  )
    throw new UpdateStateError(
      `${file} is not an update state of version ${UPDATE_STATE_VERSION}; restore it from a backup or investigate who wrote it`,
    );
  return s as UpdateState;
}

export function writeUpdateState(file: string, s: UpdateState): void {
  writeFileAtomic(file, `${JSON.stringify(s, null, 2)}\n`, { mode: 0o600 });
}
