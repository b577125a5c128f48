import type {
  AttesterKind,
  LogOffsets,
  ResultCode,
  RoundReason,
  Status,
  SwPcr,
} from '../shared/protocol/index.ts';
import type { McuRoundResult } from './mcus/model.ts';

// The gateway's records, shared by the verifier, the posture logic, the store and the operator
// API. Byte fields are Uint8Array; ids are lowercase hex.

/** Posture of a device as operators see it (`vigil-gateway devices --json`). */
export const POSTURES = ['unknown', 'enrolling', 'affirming', 'warning', 'contraindicated', 'stale'] as const;
export type Posture = (typeof POSTURES)[number];

/** TPMS_CLOCK_INFO as last appraised: the reference for reboot and rollback detection. */
export interface ClockState {
  readonly clock: bigint;
  readonly resetCount: number;
  readonly restartCount: number;
  /**
   * Unix ms at which the round that quoted this clock was issued (the quote came after it): how
   * far the clock may have run since is judged from it. Absent for records older than it.
   */
  readonly at?: number;
}

export interface SoftwareIdentity {
  readonly name: string;
  readonly version: string;
  readonly digest: Uint8Array;
}

/**
 * How far the gateway has replayed a device's software log since its last TPM reset: the next
 * round asks for entries from `count` and replays them onto `pcr`.
 */
export interface SwLogState {
  readonly resetCount: number;
  readonly count: number;
  /** Running SHA-256 PCR value after `count` entries. */
  readonly pcr: Uint8Array;
  /** The last entry per software name: what runs now. */
  readonly running: readonly SoftwareIdentity[];
}

export interface DeviceRecord {
  readonly id: string;
  readonly ekHash: string;
  readonly ekPublic: Uint8Array;
  readonly ekCert?: Uint8Array;
  /** The AK enrolled after a successful activation; absent until then. */
  readonly ak?: { readonly publicArea: Uint8Array; readonly name: Uint8Array; readonly enrolledAt: number };
  readonly attester: AttesterKind;
  readonly agent: string;
  readonly swPcr: SwPcr;
  readonly labels: Readonly<Record<string, string>>;
  readonly posture: Posture;
  readonly reasons: readonly ResultCode[];
  /** Unix ms after which an affirming or warning posture is stale. */
  readonly expires?: number;
  readonly clock?: ClockState;
  readonly swLog?: SwLogState;
  readonly firstSeen: number;
  readonly lastSeen: number;
  readonly lastRound?: string;
}

export const ROUND_STATES = ['pending', 'appraised', 'stale', 'abandoned'] as const;
/** pending: issued, awaiting evidence; appraised: evidence judged; stale: deadline passed;
 * abandoned: the connection closed before an answer. */
export type RoundState = (typeof ROUND_STATES)[number];

/**
 * What the device sent, the gateway's own exporter value and the AK the quote was checked
 * against: everything a re-verification of the round needs, kept together so that retention,
 * which deletes whole rounds, never leaves a kept round without the key that verifies it (a
 * device that re-enrols replaces its record's AK, not its rounds').
 */
export interface RoundEvidence {
  readonly exporter: Uint8Array;
  readonly body: Uint8Array;
  readonly attest: Uint8Array;
  readonly sig: Uint8Array;
  /** The AK's TPMT_PUBLIC. Absent only in rounds stored before schema version 4. */
  readonly ak?: Uint8Array;
}

export interface RoundRecord {
  /** Hex of the 16-byte round id. */
  readonly id: string;
  readonly deviceId: string;
  readonly batchId?: string;
  readonly reason: RoundReason;
  readonly nonce: Uint8Array;
  readonly pcrs: readonly number[];
  readonly logs: LogOffsets;
  readonly activate: boolean;
  readonly issuedAt: number;
  /** Absolute Unix ms deadline. */
  readonly deadlineAt: number;
  readonly state: RoundState;
  readonly status?: Status;
  readonly codes: readonly ResultCode[];
  readonly detail?: string;
  readonly evidence?: RoundEvidence;
  readonly appraisedAt?: number;
  /** The EAR the result carried: a CWT signed by the gateway (see verifier/ear.ts). */
  readonly ear?: Uint8Array;
  /** The MCU sub-attesters appraised in this round, by slot (docs/protocol.md §8). */
  readonly mcus?: readonly McuRoundResult[];
}

export interface PostureEvent {
  readonly deviceId: string;
  readonly at: number;
  readonly from: Posture;
  readonly to: Posture;
  readonly reasons: readonly ResultCode[];
  readonly round?: string;
}

export interface Release {
  readonly name: string;
  readonly version: string;
  /** Hex SHA-256 of the release's manifest, as the agent measures it. */
  readonly digest: string;
  readonly addedAt: number;
}

export interface BatchRecord {
  readonly id: string;
  /** What the batch was asked for, as the API received it (JSON). */
  readonly selector: string;
  readonly createdAt: number;
  readonly deadlineAt: number;
  readonly rounds: readonly string[];
  /** Selected devices without a connection that could be asked when the batch started. */
  readonly unreachable: readonly string[];
}
