import { writeFileSync } from 'node:fs';
import { DEFAULT_MAX_PAYLOAD, PCR_COUNT } from '../../shared/protocol/index.ts';
import { defaultMcuPolicy, type McuPolicySettings, parseMcuPolicy } from '../mcus/policy.ts';
import { COMMENT_KEY, Field, PolicyError } from './json-fields.ts';
import {
  type ConnectionLimits,
  type DeviceQuotas,
  defaultConnectionLimits,
  defaultDeviceQuotas,
  parseConnectionLimits,
  parseDeviceQuotas,
} from './limits.ts';

// The gateway's appraisal and admission policy: what an operator writes in `policy.json`
// (docs/policy.md is the reference). Parsing is strict: an unknown key, a wrong type or an
// out-of-range value is an error naming the field, because a typo silently ignored in a security
// policy is a policy nobody meant.

export { PolicyError } from './json-fields.ts';
export type { ConnectionLimits, DeviceQuotas } from './limits.ts';

export const ADMISSION_MODES = ['allowlist', 'ek-ca', 'open'] as const;
export type AdmissionMode = (typeof ADMISSION_MODES)[number];

export interface AdmissionSettings {
  /** allowlist: operator-admitted EKs only; ek-ca: an EK certificate chaining to `ekCa`; open: anyone (development). */
  readonly mode: AdmissionMode;
  /** PEM bundle of EK manufacturer CA certificates; required for `ek-ca`. As written in the file. */
  readonly ekCa?: string;
}

export interface SoftwareReference {
  readonly name: string;
  readonly version: string;
  /** Lowercase hex SHA-256 of the release's manifest. */
  readonly digest: string;
}

export interface ReferenceSettings {
  /** PCR index → allowed lowercase hex SHA-256 values. Only for PCRs in `Policy.pcrs`. */
  readonly pcrs: Readonly<Record<number, readonly string[]>>;
  /** Allowed software, in addition to the releases registered in the posture store. */
  readonly software: readonly SoftwareReference[];
}

export interface RoundTiming {
  /** Interval between periodic rounds on a connection. */
  readonly periodicMs: number;
  /** Each interval is scaled by a random factor in [1 - jitter, 1 + jitter], so rounds spread out. */
  readonly jitter: number;
  /** Time a device has to answer a challenge. */
  readonly deadlineMs: number;
  /** Time after `expires` before an unrenewed posture turns stale. */
  readonly graceMs: number;
  /** How long an appraisal result stays fresh (`result.expires` = appraisal time + expiryMs). */
  readonly expiryMs: number;
}

export interface Policy {
  readonly admission: AdmissionSettings;
  /** SHA-256 PCRs quoted every round besides the device's swPcr: ascending, unique, 0-23. */
  readonly pcrs: readonly number[];
  readonly referenceValues: ReferenceSettings;
  readonly rounds: RoundTiming;
  /** Whether a `warning` posture may use application topics. */
  readonly admitWarning: boolean;
  /** Whether `sim` (software, no hardware root) attesters are appraised at all. */
  readonly allowSim: boolean;
  /** Largest accepted message payload, bytes. */
  readonly maxPayload: number;
  /** How long settled rounds (with their evidence) are kept, days. */
  readonly retention: { readonly roundsDays: number };
  /** MCU sub-attesters: reference firmware, what a failing one does to its device, expected slots. */
  readonly mcus: McuPolicySettings;
  /** Rollouts: the gateway-wide rate at which artifact bytes go out, so attestation keeps its share. */
  readonly rollouts: { readonly artifactBytesPerSecond: number };
  /** Deadlines and limits of connections (hello, keepalive, per device, per address). */
  readonly connections: ConnectionLimits;
  /** What one device may hold in the broker. */
  readonly quotas: DeviceQuotas;
}

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

export const DEFAULT_PERIODIC_MS = 5 * MINUTE;

/**
 * A result is fresh for 2.5 periods: a device whose periodic round could not be issued once (the
 * gateway restarting, or busy with a fleet-wide round) keeps its posture, two missed rounds do
 * not. Silence is not hidden by it: a device asked and not answering is stale at its deadline.
 */
export function defaultExpiryMs(periodicMs: number): number {
  return Math.ceil(2.5 * periodicMs);
}

export function defaultPolicy(): Policy {
  return {
    admission: { mode: 'allowlist' },
    pcrs: [],
    referenceValues: { pcrs: {}, software: [] },
    rounds: {
      periodicMs: DEFAULT_PERIODIC_MS,
      jitter: 0.1,
      deadlineMs: 10_000,
      graceMs: 0,
      expiryMs: defaultExpiryMs(DEFAULT_PERIODIC_MS),
    },
    admitWarning: false,
    allowSim: false,
    maxPayload: DEFAULT_MAX_PAYLOAD,
    // A round keeps its evidence (about 1 KB) so it can be re-verified; at a 5-minute interval
    // that is about 0.3 MB per device a day, so a week is 2 MB per device.
    retention: { roundsDays: 7 },
    mcus: defaultMcuPolicy(),
    // 4 MiB/s: a 20 MB release reaches 100 devices in about 8 minutes, and a round's few hundred
    // bytes never wait behind a chunk for long.
    rollouts: { artifactBytesPerSecond: 4 * 1024 * 1024 },
    connections: defaultConnectionLimits(),
    quotas: defaultDeviceQuotas(),
  };
}

const KEYS = [
  'admission',
  'pcrs',
  'referenceValues',
  'rounds',
  'admitWarning',
  'allowSim',
  'maxPayload',
  'retention',
  'mcus',
  'rollouts',
  'connections',
  'quotas',
] as const;
const MAX_PCR = PCR_COUNT - 1;

function parseAdmission(f: Field | undefined): AdmissionSettings {
  if (!f) return defaultPolicy().admission;
  const m = f.object(['mode', 'ekCa']);
  const mode = m.get('mode')?.oneOf(ADMISSION_MODES) ?? defaultPolicy().admission.mode;
  const ekCa = m.get('ekCa')?.text();
  if (mode === 'ek-ca' && ekCa === undefined) {
    throw f
      .child('ekCa', undefined)
      .error(
        'required when admission.mode is "ek-ca": the path of a PEM file of EK manufacturer CA certificates',
      );
  }
  // An ekCa with another mode is kept, unused: switching modes for a while should not mean
  // deleting and retyping the path.
  return ekCa === undefined ? { mode } : { mode, ekCa };
}

function parsePcrs(f: Field | undefined): number[] {
  if (!f) return [];
  const out: number[] = [];
  for (const e of f.array(`PCR indices from 0 to ${MAX_PCR}, ascending`)) {
    const i = e.integer(0, MAX_PCR);
    const prev = out.at(-1);
    if (prev !== undefined && i <= prev)
      throw e.error(`expected PCR indices ascending without repeats, got ${i} after ${prev}`);
    out.push(i);
  }
  return out;
}

function parseReferenceValues(f: Field | undefined, quoted: readonly number[]): ReferenceSettings {
  if (!f) return defaultPolicy().referenceValues;
  const m = f.object(['pcrs', 'software']);
  const pcrs: Record<number, readonly string[]> = {};
  const pcrEntries = m
    .get('pcrs')
    ?.entries('an object mapping PCR indices to lists of allowed SHA-256 values');
  for (const [key, e] of pcrEntries ?? []) {
    const index = /^(0|[1-9][0-9]?)$/.test(key) ? Number(key) : Number.NaN;
    if (!(index <= MAX_PCR)) throw e.error(`expected a PCR index from 0 to ${MAX_PCR} as the key`);
    if (!quoted.includes(index)) {
      throw e.error(
        `PCR ${index} is not in pcrs, so it is never quoted and this would check nothing: add it to pcrs`,
      );
    }
    const values = e.array('a list of allowed SHA-256 values (64 hex digits each)').map((v) => v.sha256Hex());
    if (values.length === 0) e.fail('at least one allowed value (an empty list refuses every device)');
    pcrs[index] = values;
  }
  const software: SoftwareReference[] = [];
  const seen = new Set<string>();
  for (const e of m.get('software')?.array('a list of {name, version, digest}') ?? []) {
    const s = e.object(['name', 'version', 'digest']);
    const need = (k: string) => s.get(k) ?? e.child(k, undefined);
    const ref = {
      name: need('name').text(),
      version: need('version').text(),
      digest: need('digest').sha256Hex(),
    };
    const id = JSON.stringify([ref.name, ref.version]);
    if (seen.has(id)) throw e.error(`${ref.name} ${ref.version} is listed twice: one digest per version`);
    seen.add(id);
    software.push(ref);
  }
  return { pcrs, software };
}

function parseRounds(f: Field | undefined): RoundTiming {
  const d = defaultPolicy().rounds;
  if (!f) return d;
  const m = f.object(['periodicMs', 'jitter', 'deadlineMs', 'graceMs', 'expiryMs']);
  const periodicMs = m.get('periodicMs')?.integer(1000, DAY, 'ms') ?? d.periodicMs;
  const jitter = m.get('jitter')?.number(0, 0.5) ?? d.jitter;
  const deadlineField = m.get('deadlineMs');
  const deadlineMs = deadlineField?.integer(100, 5 * MINUTE, 'ms') ?? d.deadlineMs;
  if (deadlineMs >= periodicMs) {
    (deadlineField ?? f.child('deadlineMs', deadlineMs)).fail(
      `less than rounds.periodicMs (${periodicMs}): a round must end before the next one starts`,
    );
  }
  const graceMs = m.get('graceMs')?.integer(0, DAY, 'ms') ?? d.graceMs;
  const expiryField = m.get('expiryMs');
  const expiryMs = expiryField?.integer(1000, 7 * DAY, 'ms') ?? defaultExpiryMs(periodicMs);
  // The longest gap between two answered rounds; a shorter freshness would lapse every device
  // between rounds even when all is well.
  const gap = Math.round(periodicMs * (1 + jitter)) + deadlineMs;
  if (expiryMs <= gap) {
    (expiryField ?? f.child('expiryMs', expiryMs)).fail(
      `more than periodicMs × (1 + jitter) + deadlineMs = ${gap} ms, or every device would turn stale between rounds`,
    );
  }
  return { periodicMs, jitter, deadlineMs, graceMs, expiryMs };
}

/** Validate a parsed JSON document as a policy; `source` names it in errors (usually the file). */
export function parsePolicy(json: unknown, source: string): Policy {
  const m = new Field(source, '', json).object(KEYS);
  const d = defaultPolicy();
  const pcrs = parsePcrs(m.get('pcrs'));
  return {
    admission: parseAdmission(m.get('admission')),
    pcrs,
    referenceValues: parseReferenceValues(m.get('referenceValues'), pcrs),
    rounds: parseRounds(m.get('rounds')),
    admitWarning: m.get('admitWarning')?.boolean() ?? d.admitWarning,
    allowSim: m.get('allowSim')?.boolean() ?? d.allowSim,
    maxPayload: m.get('maxPayload')?.integer(4096, 16 * 1024 * 1024, 'bytes') ?? d.maxPayload,
    retention: parseRetention(m.get('retention')),
    connections: parseConnectionLimits(m.get('connections')),
    quotas: parseDeviceQuotas(m.get('quotas')),
    mcus: parseMcuPolicy(m.get('mcus')),
    rollouts: parseRollouts(m.get('rollouts')),
  };
}

function parseRollouts(f: Field | undefined): Policy['rollouts'] {
  const d = defaultPolicy().rollouts;
  if (!f) return d;
  const m = f.object(['artifactBytesPerSecond']);
  return {
    artifactBytesPerSecond:
      m.get('artifactBytesPerSecond')?.integer(65_536, 10 * 1024 * 1024 * 1024, 'bytes/s') ??
      d.artifactBytesPerSecond,
  };
}

function parseRetention(f: Field | undefined): Policy['retention'] {
  const d = defaultPolicy().retention;
  if (!f) return d;
  const m = f.object(['roundsDays']);
  return { roundsDays: m.get('roundsDays')?.integer(1, 3650, 'days') ?? d.roundsDays };
}

/** Parse the text of a policy file; invalid JSON is a PolicyError too. */
export function parsePolicyText(text: string, source: string): Policy {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new PolicyError(source, '', `not valid JSON: ${(err as Error).message}`);
  }
  return parsePolicy(json, source);
}

/**
 * The default policy as a file an operator edits. `rounds.expiryMs` is left out so that it
 * follows `rounds.periodicMs` when only the interval is changed.
 */
export function defaultPolicyText(): string {
  const { expiryMs: _derived, ...rounds } = defaultPolicy().rounds;
  const doc = {
    [COMMENT_KEY]:
      'Vigil gateway policy: see docs/policy.md. Reloaded on change; an invalid edit is reported and ignored.',
    ...defaultPolicy(),
    rounds: { ...rounds, [COMMENT_KEY]: 'expiryMs defaults to 2.5 × periodicMs' },
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/** Write the default policy; refuses to replace an existing file unless told to. */
export function writeDefaultPolicy(path: string, options: { overwrite?: boolean } = {}): void {
  writeFileSync(path, defaultPolicyText(), { flag: options.overwrite ? 'w' : 'wx', mode: 0o644 });
}
