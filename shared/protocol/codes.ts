// The result codes of vigil/1 (PROTOCOL.md §5), in appraisal order: the first failing check
// decides. Both sides and every operator surface use exactly these strings; they are stable.
export const RESULT_CODES = [
  'malformed',
  'identity-mismatch',
  'ek-not-admitted',
  'round-unknown',
  'round-expired',
  'round-replayed',
  'activation-failed',
  'ak-unknown',
  'signature-invalid',
  'attest-invalid',
  'binding-mismatch',
  'pcr-selection-mismatch',
  'pcr-digest-mismatch',
  'log-mismatch',
  'clock-rollback',
  'sw-not-allowed',
  'ima-violation',
  'firmware-changed',
  'stale',
] as const;

export type ResultCode = (typeof RESULT_CODES)[number];

const known = new Set<string>(RESULT_CODES);
export function isResultCode(s: string): s is ResultCode {
  return known.has(s);
}

/** Appraisal status of a result (EAR's trust tiers plus `none` for "no claim could be made"). */
export const STATUSES = ['affirming', 'warning', 'contraindicated', 'none'] as const;
export type Status = (typeof STATUSES)[number];

export const REASONS = ['onboard', 'periodic', 'on-demand', 'swarm', 'device'] as const;
export type RoundReason = (typeof REASONS)[number];

export const ATTESTERS = ['tpm2', 'sim'] as const;
export type AttesterKind = (typeof ATTESTERS)[number];

export const LOG_NAMES = ['sw', 'ima', 'boot'] as const;
export type LogName = (typeof LOG_NAMES)[number];
