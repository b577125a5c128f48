import { MCU_RESULT_CODES } from '../mcu/codes.ts';

// The result codes of vigil/1 (PROTOCOL.md §5), in appraisal order: the first failing check
// decides. Both sides and every operator surface use exactly these strings; they are stable.
// The MCU codes are the project's extension (docs/protocol.md §8): a sub-attester's failure,
// appraised after the device's own checks passed, which the policy may make the device's.
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
  ...MCU_RESULT_CODES,
  'stale',
] as const;

export type ResultCode = (typeof RESULT_CODES)[number];

const known = new Set<string>(RESULT_CODES);
export function isResultCode(s: string): s is ResultCode {
  return known.has(s);
}

/**
 * Outcome codes of a device's report on a command (PROTOCOL.md §6.3), as the device states them.
 */
export const REPORT_CODES = [
  'manifest-invalid',
  'release-key-unknown',
  'rollback-refused',
  'expired',
  'artifact-invalid',
  'health-failed',
  'busy',
  'unsupported',
] as const;
export type ReportCode = (typeof REPORT_CODES)[number];

/** Codes the gateway records per rollout member (PROTOCOL.md §6.5), besides the device's own. */
export const ROLLOUT_CODES = [
  'command-unknown',
  'claim-mismatch',
  'timed-out',
  'absent',
  'appraisal-failed',
] as const;
export type RolloutCode = (typeof ROLLOUT_CODES)[number];

/**
 * What an `error` may carry: a result code of §5, a code of §6.5, `unexpected-message` for a
 * well-formed message that the connection's state does not accept (evidence before hello, a
 * second hello, a report before the connection attested), or `quota-exceeded` for a publish,
 * subscribe or connection refused because the device is at one of the policy's quotas or limits.
 * The last two are the project's own: §2 lists `malformed` for messages that fail the codec, and
 * neither a message in the wrong order nor a device over its quota does.
 */
export const ERROR_CODES = [
  ...RESULT_CODES,
  ...ROLLOUT_CODES,
  'unexpected-message',
  'quota-exceeded',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Appraisal status of a result (EAR's trust tiers plus `none` for "no claim could be made"). */
export const STATUSES = ['affirming', 'warning', 'contraindicated', 'none'] as const;
export type Status = (typeof STATUSES)[number];

export const REASONS = ['onboard', 'periodic', 'on-demand', 'swarm', 'device'] as const;
export type RoundReason = (typeof REASONS)[number];

export const ATTESTERS = ['tpm2', 'sim'] as const;
export type AttesterKind = (typeof ATTESTERS)[number];

export const LOG_NAMES = ['sw', 'ima', 'boot'] as const;
export type LogName = (typeof LOG_NAMES)[number];
