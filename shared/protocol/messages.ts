import type { CborMap } from '../cbor/value.ts';
import type { McuClaims } from '../mcu/claims.ts';
import type {
  AttesterKind,
  ErrorCode,
  LogName,
  ReportCode,
  ResultCode,
  RoundReason,
  Status,
} from './codes.ts';

// The messages of vigil/1 (PROTOCOL.md §2) as the codec hands them out: every field already
// checked for presence, type and exact length, so the rest of the code never re-validates.

/** PCRs 8 to 15: zero at reset and not resettable from locality 0 (16 and 23 are, by anyone). */
export type SwPcr = 8 | 9 | 10 | 11 | 12 | 13 | 14 | 15;
export const SW_PCR_MIN = 8;
export const SW_PCR_MAX = 15;

export const ROUND_ID_BYTES = 16;
export const NONCE_BYTES = 32;
export const DIGEST_BYTES = 32;
/** PCR indices a TPM 2.0 PC-client platform has (0 to 23). */
export const PCR_COUNT = 24;

export interface Hello {
  readonly t: 'hello';
  /** Marshalled TPMT_PUBLIC of the EK. */
  readonly ek: Uint8Array;
  /** EK certificate, DER. */
  readonly ekCert?: Uint8Array;
  /** Marshalled TPMT_PUBLIC of the AK. */
  readonly ak: Uint8Array;
  readonly attester: AttesterKind;
  readonly agent: string;
  readonly swPcr: SwPcr;
}

export interface Activation {
  /** TPM2B_ID_OBJECT contents from MakeCredential. */
  readonly blob: Uint8Array;
  /** TPM2B_ENCRYPTED_SECRET contents from MakeCredential. */
  readonly secret: Uint8Array;
}

export type LogOffsets = Readonly<Partial<Record<LogName, number>>>;

export interface Challenge {
  readonly t: 'challenge';
  readonly round: Uint8Array;
  readonly nonce: Uint8Array;
  readonly reason: RoundReason;
  /** SHA-256 bank PCR indices, strictly ascending. */
  readonly pcrs: readonly number[];
  readonly logs: LogOffsets;
  readonly activate?: Activation;
  /** Milliseconds the device has to answer. */
  readonly deadline: number;
}

export interface Evidence {
  readonly t: 'evidence';
  readonly round: Uint8Array;
  /** CBOR-encoded Claims; kept as bytes because the binding signs exactly these bytes. */
  readonly body: Uint8Array;
  /** TPMS_ATTEST from TPM2_Quote. */
  readonly attest: Uint8Array;
  /** TPMT_SIGNATURE from TPM2_Quote. */
  readonly sig: Uint8Array;
}

export interface Result {
  readonly t: 'result';
  readonly round: Uint8Array;
  readonly status: Status;
  readonly reasons: readonly ResultCode[];
  /** Unix ms after which the posture is stale unless re-attested. */
  readonly expires: number;
  /** EAR: a CWT (untagged COSE_Sign1, ES256) over the EAR claims in their CBOR serialization. */
  readonly ear: Uint8Array;
}

export interface ErrorMessage {
  readonly t: 'error';
  readonly code: ErrorCode;
  readonly detail: string;
  readonly round?: Uint8Array;
}

// Commands and reports (PROTOCOL.md §6.2, §6.3): one type per `op` and per report state, so that
// a chunk without data or a `want` on a `staged` report cannot be built, let alone sent.

export const COMMAND_ID_BYTES = 16;
/** The most artifact bytes one `chunk` carries, and one `want` asks for. */
export const MAX_CHUNK_BYTES = 65_536;
/** A signed release manifest is a few hundred bytes; anything near this is not one. */
export const MAX_RELEASE_MANIFEST_BYTES = 16 * 1024;

export const COMMAND_OPS = ['stage', 'chunk', 'activate', 'commit', 'rollback', 'operate', 'cancel'] as const;
export type CommandOp = (typeof COMMAND_OPS)[number];

interface CommandBase {
  readonly t: 'command';
  /** Command id: a repeated id is answered with the state reached, never acted on twice. */
  readonly id: Uint8Array;
  /** The rollout it belongs to. */
  readonly rollout: string;
  /** Milliseconds the device has to report the outcome. */
  readonly deadline: number;
}

export interface StageCommand extends CommandBase {
  readonly op: 'stage';
  /** The release manifest, a COSE_Sign1 (release-manifest.ts). */
  readonly manifest: Uint8Array;
}

export interface ChunkCommand extends CommandBase {
  readonly op: 'chunk';
  /** The `stage` command this chunk serves. */
  readonly command: Uint8Array;
  readonly offset: number;
  /** 1 to MAX_CHUNK_BYTES artifact bytes. */
  readonly data: Uint8Array;
}

export interface ActivateCommand extends CommandBase {
  readonly op: 'activate';
  /** Device clock, Unix ms; in the past means now. */
  readonly at: number;
}

export interface CommitCommand extends CommandBase {
  readonly op: 'commit';
}

export interface RollbackCommand extends CommandBase {
  readonly op: 'rollback';
}

export interface Operation {
  /** Names the handler the device's configuration runs. */
  readonly name: string;
  readonly args: CborMap;
  /** The gateway's signed release of the operation (operate-token.ts). */
  readonly token: Uint8Array;
}

export interface OperateCommand extends CommandBase {
  readonly op: 'operate';
  readonly operation: Operation;
  readonly at: number;
}

export interface CancelCommand extends CommandBase {
  readonly op: 'cancel';
  /** The `stage` or `operate` command to stop. */
  readonly command: Uint8Array;
}

export type Command =
  | StageCommand
  | ChunkCommand
  | ActivateCommand
  | CommitCommand
  | RollbackCommand
  | OperateCommand
  | CancelCommand;

export const REPORT_STATES = [
  'fetching',
  'staged',
  'activated',
  'rolled-back',
  'committed',
  'done',
  'cancelled',
  'failed',
] as const;
export type ReportState = (typeof REPORT_STATES)[number];

/** The next artifact bytes a device wants. */
export interface Want {
  readonly offset: number;
  /** 1 to MAX_CHUNK_BYTES. */
  readonly length: number;
}

interface ReportBase {
  readonly t: 'report';
  /** The command reported on (for a staging, always the `stage` command; for `cancelled`, the one stopped). */
  readonly command: Uint8Array;
  /** What runs now: a claim, never evidence. */
  readonly sw: SoftwareClaim;
  readonly detail?: string;
}

export interface FetchingReport extends ReportBase {
  readonly state: 'fetching';
  readonly want?: Want;
}

export interface OutcomeReport extends ReportBase {
  readonly state: 'failed' | 'rolled-back';
  readonly code?: ReportCode;
}

export interface ProgressReport extends ReportBase {
  readonly state: Exclude<ReportState, FetchingReport['state'] | OutcomeReport['state']>;
}

export type Report = FetchingReport | OutcomeReport | ProgressReport;

export type DeviceMessage = Hello | Evidence | Report;
export type GatewayMessage = Challenge | Result | Command | ErrorMessage;
export type Message = DeviceMessage | GatewayMessage;
export type MessageType = Message['t'];

export interface SwEntry {
  /** SHA-256 of the software's manifest, extended into swPcr. */
  readonly digest: Uint8Array;
  readonly name: string;
  readonly version: string;
}

export interface LogChunk<E> {
  /** Index of the first entry in this chunk within the whole log. */
  readonly from: number;
  readonly entries: readonly E[];
  /** More entries exist after this chunk. */
  readonly more: boolean;
}

export interface Logs {
  readonly sw?: LogChunk<SwEntry>;
  /** Lines of the kernel's IMA ASCII runtime measurement log. */
  readonly ima?: LogChunk<string>;
  /** Chunks of the binary TCG boot event log. */
  readonly boot?: LogChunk<Uint8Array>;
}

export interface SoftwareClaim {
  readonly name: string;
  readonly version: string;
}

/** The claims map carried, CBOR-encoded, in `evidence.body`. */
export interface Claims {
  readonly nonce: Uint8Array;
  /** Quoted SHA-256 PCR values by index. */
  readonly pcrs: ReadonlyMap<number, Uint8Array>;
  readonly sw: SoftwareClaim;
  readonly logs: Logs;
  /** Secret recovered by TPM2_ActivateCredential, when the challenge asked for it. */
  readonly activation?: Uint8Array;
  /** Device clock, Unix ms; informational only. */
  readonly time?: number;
  /** The sub-attesters' evidence, per serial slot (docs/protocol.md §8); absent without MCUs. */
  readonly mcus?: McuClaims;
}
