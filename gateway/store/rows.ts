import type {
  AttesterKind,
  LogOffsets,
  ResultCode,
  RoundReason,
  Status,
  SwPcr,
} from '../../shared/protocol/index.ts';
import type { McuRoundResult } from '../mcus/model.ts';
import type {
  BatchRecord,
  ClockState,
  DeviceRecord,
  Posture,
  PostureEvent,
  Release,
  RoundRecord,
  RoundState,
  SwLogState,
} from '../model.ts';

// Records ↔ rows (tables.ts names them, each engine's migrations define them). Encoding copies byte fields, so a caller that
// reuses a buffer after saving cannot change what gets committed later; decoding returns plain
// Uint8Arrays (not Buffers), so a record reads back equal to what was saved.

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type Bytes = Uint8Array;

const UINT64_MAX = (1n << 64n) - 1n;

function bytesIn(b: Bytes): Buffer {
  return Buffer.from(b);
}
function bytesOut(b: Buffer): Bytes {
  return new Uint8Array(b);
}
function hex(b: Bytes): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}
function unhex(s: string): Bytes {
  return new Uint8Array(Buffer.from(s, 'hex'));
}
function clockIn(c: bigint): string {
  if (c < 0n || c > UINT64_MAX) throw new RangeError(`clock: expected a UINT64, got ${c}`);
  return c.toString();
}

export interface DeviceRow {
  id: string;
  ek_hash: string;
  ek_public: Buffer;
  ek_cert: Buffer | null;
  ak_public: Buffer | null;
  ak_name: Buffer | null;
  ak_enrolled_at: number | null;
  attester: string;
  agent: string;
  sw_pcr: number;
  labels: string;
  posture: string;
  reasons: string;
  expires: number | null;
  clock: string | null;
  reset_count: number | null;
  restart_count: number | null;
  clock_at: number | null;
  sw_log: string | null;
  first_seen: number;
  last_seen: number;
  last_round: string | null;
}

interface SwLogJson {
  resetCount: number;
  count: number;
  pcr: string;
  running: { name: string; version: string; digest: string }[];
}

export function deviceToRow(d: DeviceRecord): DeviceRow {
  const swLog: SwLogJson | undefined = d.swLog && {
    resetCount: d.swLog.resetCount,
    count: d.swLog.count,
    pcr: hex(d.swLog.pcr),
    running: d.swLog.running.map((s) => ({ name: s.name, version: s.version, digest: hex(s.digest) })),
  };
  return {
    id: d.id,
    ek_hash: d.ekHash,
    ek_public: bytesIn(d.ekPublic),
    ek_cert: d.ekCert ? bytesIn(d.ekCert) : null,
    ak_public: d.ak ? bytesIn(d.ak.publicArea) : null,
    ak_name: d.ak ? bytesIn(d.ak.name) : null,
    ak_enrolled_at: d.ak ? d.ak.enrolledAt : null,
    attester: d.attester,
    agent: d.agent,
    sw_pcr: d.swPcr,
    labels: JSON.stringify(d.labels),
    posture: d.posture,
    reasons: JSON.stringify(d.reasons),
    expires: d.expires ?? null,
    clock: d.clock ? clockIn(d.clock.clock) : null,
    reset_count: d.clock ? d.clock.resetCount : null,
    restart_count: d.clock ? d.clock.restartCount : null,
    clock_at: d.clock?.at ?? null,
    sw_log: swLog ? JSON.stringify(swLog) : null,
    first_seen: d.firstSeen,
    last_seen: d.lastSeen,
    last_round: d.lastRound ?? null,
  };
}

export function deviceFromRow(r: DeviceRow): DeviceRecord {
  const d: Mutable<DeviceRecord> = {
    id: r.id,
    ekHash: r.ek_hash,
    ekPublic: bytesOut(r.ek_public),
    attester: r.attester as AttesterKind,
    agent: r.agent,
    swPcr: r.sw_pcr as SwPcr,
    labels: JSON.parse(r.labels) as Record<string, string>,
    posture: r.posture as Posture,
    reasons: JSON.parse(r.reasons) as ResultCode[],
    firstSeen: r.first_seen,
    lastSeen: r.last_seen,
  };
  if (r.ek_cert) d.ekCert = bytesOut(r.ek_cert);
  if (r.ak_public && r.ak_name && r.ak_enrolled_at !== null) {
    d.ak = { publicArea: bytesOut(r.ak_public), name: bytesOut(r.ak_name), enrolledAt: r.ak_enrolled_at };
  }
  if (r.expires !== null) d.expires = r.expires;
  if (r.clock !== null && r.reset_count !== null && r.restart_count !== null) {
    const clock: ClockState = {
      clock: BigInt(r.clock),
      resetCount: r.reset_count,
      restartCount: r.restart_count,
      ...(r.clock_at !== null && { at: r.clock_at }),
    };
    d.clock = clock;
  }
  if (r.sw_log !== null) {
    const j = JSON.parse(r.sw_log) as SwLogJson;
    const swLog: SwLogState = {
      resetCount: j.resetCount,
      count: j.count,
      pcr: unhex(j.pcr),
      running: j.running.map((s) => ({ name: s.name, version: s.version, digest: unhex(s.digest) })),
    };
    d.swLog = swLog;
  }
  if (r.last_round !== null) d.lastRound = r.last_round;
  return d;
}

export interface RoundRow {
  id: string;
  device_id: string;
  batch_id: string | null;
  reason: string;
  nonce: Buffer;
  pcrs: string;
  logs: string;
  activate: number;
  issued_at: number;
  deadline_at: number;
  state: string;
  status: string | null;
  codes: string;
  detail: string | null;
  exporter: Buffer | null;
  body: Buffer | null;
  attest: Buffer | null;
  sig: Buffer | null;
  appraised_at: number | null;
  ear: Buffer | null;
  ak_public: Buffer | null;
  /** JSON: what each MCU sub-attester's appraisal concluded; null when none was appraised. */
  mcus: string | null;
}

export function roundToRow(r: RoundRecord): RoundRow {
  const e = r.evidence;
  return {
    id: r.id,
    device_id: r.deviceId,
    batch_id: r.batchId ?? null,
    reason: r.reason,
    nonce: bytesIn(r.nonce),
    pcrs: JSON.stringify(r.pcrs),
    logs: JSON.stringify(r.logs),
    activate: r.activate ? 1 : 0,
    issued_at: r.issuedAt,
    deadline_at: r.deadlineAt,
    state: r.state,
    status: r.status ?? null,
    codes: JSON.stringify(r.codes),
    detail: r.detail ?? null,
    exporter: e ? bytesIn(e.exporter) : null,
    body: e ? bytesIn(e.body) : null,
    attest: e ? bytesIn(e.attest) : null,
    sig: e ? bytesIn(e.sig) : null,
    appraised_at: r.appraisedAt ?? null,
    ear: r.ear ? bytesIn(r.ear) : null,
    ak_public: e?.ak ? bytesIn(e.ak) : null,
    mcus: r.mcus ? JSON.stringify(r.mcus) : null,
  };
}

export function roundFromRow(r: RoundRow): RoundRecord {
  const out: Mutable<RoundRecord> = {
    id: r.id,
    deviceId: r.device_id,
    reason: r.reason as RoundReason,
    nonce: bytesOut(r.nonce),
    pcrs: JSON.parse(r.pcrs) as number[],
    logs: JSON.parse(r.logs) as LogOffsets,
    activate: r.activate !== 0,
    issuedAt: r.issued_at,
    deadlineAt: r.deadline_at,
    state: r.state as RoundState,
    codes: JSON.parse(r.codes) as ResultCode[],
  };
  if (r.batch_id !== null) out.batchId = r.batch_id;
  if (r.status !== null) out.status = r.status as Status;
  if (r.detail !== null) out.detail = r.detail;
  if (r.exporter && r.body && r.attest && r.sig) {
    out.evidence = {
      exporter: bytesOut(r.exporter),
      body: bytesOut(r.body),
      attest: bytesOut(r.attest),
      sig: bytesOut(r.sig),
      ...(r.ak_public && { ak: bytesOut(r.ak_public) }),
    };
  }
  if (r.appraised_at !== null) out.appraisedAt = r.appraised_at;
  if (r.ear !== null) out.ear = bytesOut(r.ear);
  if (r.mcus !== null) out.mcus = JSON.parse(r.mcus) as McuRoundResult[];
  return out;
}

export interface PostureEventRow {
  device_id: string;
  at: number;
  from_posture: string;
  to_posture: string;
  reasons: string;
  round: string | null;
}

export function postureEventToRow(e: PostureEvent): PostureEventRow {
  return {
    device_id: e.deviceId,
    at: e.at,
    from_posture: e.from,
    to_posture: e.to,
    reasons: JSON.stringify(e.reasons),
    round: e.round ?? null,
  };
}

export function postureEventFromRow(r: PostureEventRow): PostureEvent {
  const e: Mutable<PostureEvent> = {
    deviceId: r.device_id,
    at: r.at,
    from: r.from_posture as Posture,
    to: r.to_posture as Posture,
    reasons: JSON.parse(r.reasons) as ResultCode[],
  };
  if (r.round !== null) e.round = r.round;
  return e;
}

export interface ReleaseRow {
  name: string;
  version: string;
  digest: string;
  added_at: number;
}

const DIGEST = /^[0-9a-f]{64}$/;

export function releaseToRow(r: Release): ReleaseRow {
  const digest = r.digest.toLowerCase();
  if (!DIGEST.test(digest)) {
    throw new TypeError(
      `release ${r.name} ${r.version}: digest: expected 64 hex digits (SHA-256), got ${JSON.stringify(r.digest)}`,
    );
  }
  return { name: r.name, version: r.version, digest, added_at: r.addedAt };
}

export function releaseFromRow(r: ReleaseRow): Release {
  return { name: r.name, version: r.version, digest: r.digest, addedAt: r.added_at };
}

export interface BatchRow {
  id: string;
  selector: string;
  created_at: number;
  deadline_at: number;
  rounds: string;
  unreachable: string;
}

export function batchToRow(b: BatchRecord): BatchRow {
  return {
    id: b.id,
    selector: b.selector,
    created_at: b.createdAt,
    deadline_at: b.deadlineAt,
    rounds: JSON.stringify(b.rounds),
    unreachable: JSON.stringify(b.unreachable),
  };
}

export function batchFromRow(r: BatchRow): BatchRecord {
  return {
    id: r.id,
    selector: r.selector,
    createdAt: r.created_at,
    deadlineAt: r.deadline_at,
    rounds: JSON.parse(r.rounds) as string[],
    unreachable: JSON.parse(r.unreachable) as string[],
  };
}
