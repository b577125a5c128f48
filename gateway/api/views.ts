import type { ResultCode, Status } from '../../shared/protocol/index.ts';
import type { McuView } from '../mcus/view.ts';
import type { DeviceRecord, Posture, PostureEvent, Release, RoundRecord, RoundState } from '../model.ts';

// The JSON the operator API returns (and `vigil-gateway ... --json` prints as is). Times are
// Unix ms; absent values are null rather than missing, so that every object has every key.

export interface RoundView {
  readonly id: string;
  readonly reason: string;
  readonly batch: string | null;
  readonly state: RoundState;
  readonly status: Status | null;
  readonly codes: readonly ResultCode[];
  readonly detail: string | null;
  readonly activate: boolean;
  readonly issuedAt: number;
  readonly deadlineAt: number;
  readonly appraisedAt: number | null;
}

export interface DeviceView {
  readonly id: string;
  readonly posture: Posture;
  readonly reasons: readonly ResultCode[];
  readonly connected: boolean;
  readonly labels: Readonly<Record<string, string>>;
  readonly lastRound: RoundView | null;
  readonly expires: number | null;
  readonly ekHash: string;
  readonly attester: string;
  readonly agent: string;
  readonly enrolled: boolean;
  readonly firstSeen: number;
  readonly lastSeen: number;
}

export interface PostureEventView {
  readonly at: number;
  readonly from: Posture;
  readonly to: Posture;
  readonly reasons: readonly ResultCode[];
  readonly round: string | null;
}

export interface DeviceDetailView {
  readonly device: DeviceView & {
    readonly connections: number;
    readonly software: readonly { name: string; version: string; digest: string }[];
  };
  /** Its MCU sub-attesters, as its newest appraised round left them. */
  readonly mcus: readonly McuView[];
  readonly rounds: readonly RoundView[];
  readonly events: readonly PostureEventView[];
}

/** GET /v1/rounds/{id}/evidence: what re-verifying a round needs; bytes in base64. */
export interface EvidenceView {
  readonly device: string;
  readonly round: RoundView;
  readonly nonce: string;
  /** B, the TLS exporter value of the connection the evidence arrived on, as the gateway computed it. */
  readonly exporter: string;
  readonly body: string;
  /** TPMS_ATTEST. */
  readonly attest: string;
  /** TPMT_SIGNATURE. */
  readonly sig: string;
  /** The AK's TPMT_PUBLIC; null when neither the round nor the device has one. */
  readonly ak: string | null;
  /** `round`: the AK the round was checked against; `device`: the device's AK now (rounds stored before schema 4). */
  readonly akSource: 'round' | 'device' | null;
  /** The SHA-256 PCRs the round asked for (the quote's selection). */
  readonly pcrs: readonly number[];
}

export interface ReleaseView {
  readonly name: string;
  readonly version: string;
  readonly digest: string;
  readonly addedAt: number;
}

export function roundView(r: RoundRecord): RoundView {
  return {
    id: r.id,
    reason: r.reason,
    batch: r.batchId ?? null,
    state: r.state,
    status: r.status ?? null,
    codes: r.codes,
    detail: r.detail ?? null,
    activate: r.activate,
    issuedAt: r.issuedAt,
    deadlineAt: r.deadlineAt,
    appraisedAt: r.appraisedAt ?? null,
  };
}

export function deviceView(
  d: DeviceRecord,
  connected: boolean,
  lastRound: RoundRecord | undefined,
): DeviceView {
  return {
    id: d.id,
    posture: d.posture,
    reasons: d.reasons,
    connected,
    labels: d.labels,
    lastRound: lastRound ? roundView(lastRound) : null,
    expires: d.expires ?? null,
    ekHash: d.ekHash,
    attester: d.attester,
    agent: d.agent,
    enrolled: d.ak !== undefined,
    firstSeen: d.firstSeen,
    lastSeen: d.lastSeen,
  };
}

export function eventView(e: PostureEvent): PostureEventView {
  return { at: e.at, from: e.from, to: e.to, reasons: e.reasons, round: e.round ?? null };
}

export function releaseView(r: Release): ReleaseView {
  return { name: r.name, version: r.version, digest: r.digest, addedAt: r.addedAt };
}
