import type { ResultCode } from '../../shared/protocol/index.ts';
import type { Posture } from '../model.ts';

// The posture rules, all of them, as one pure function of (state, what happened, now): which
// appraisal outcomes move a device's posture and which are ignored because they do not speak for
// the device. No clock, no store, no connection objects: the callers describe what happened.

/**
 * Who can make an appraisal fail with a code. `anyone`: a connection that merely claims the
 * device's id can cause it (nothing it sent was yet signed by the enrolled AK and bound to the
 * connection), so it says nothing about the device. `device`: the evidence was signed by the
 * enrolled AK and bound to this very connection, so the failure is the device's own statement.
 * `silence`: nobody answered in time.
 */
export type FailureSource = 'anyone' | 'device' | 'silence';

export const FAILURE_SOURCE: Readonly<Record<ResultCode, FailureSource>> = {
  malformed: 'anyone',
  'identity-mismatch': 'anyone',
  'ek-not-admitted': 'anyone',
  'round-unknown': 'anyone',
  'round-expired': 'anyone',
  'round-replayed': 'anyone',
  'activation-failed': 'anyone',
  'ak-unknown': 'anyone',
  'signature-invalid': 'anyone',
  'attest-invalid': 'anyone',
  'binding-mismatch': 'anyone',
  'pcr-selection-mismatch': 'device',
  'pcr-digest-mismatch': 'device',
  'log-mismatch': 'device',
  'clock-rollback': 'device',
  'sw-not-allowed': 'device',
  'ima-violation': 'device',
  'firmware-changed': 'device',
  // A sub-attester's evidence travels in the body the enrolled AK signed on this connection.
  'mcu-absent': 'device',
  'mcu-malformed': 'device',
  'mcu-identity-unknown': 'device',
  'mcu-signature-invalid': 'device',
  'mcu-binding-mismatch': 'device',
  'mcu-firmware-changed': 'device',
  stale: 'silence',
};

/**
 * The connection an outcome came from, as posture cares: one that attested before (its failures
 * speak for the device whatever the code), or one that never did, while the device does or does
 * not have a connection trusted right now.
 */
export type Standing = 'attested' | 'unattested' | 'unattested-while-trusted-elsewhere';

export type PostureInput =
  /** An appraisal passed. */
  | { readonly kind: 'appraised'; readonly status: 'affirming' | 'warning'; readonly expires: number }
  /** An appraisal failed with `code`. */
  | { readonly kind: 'refused'; readonly code: ResultCode; readonly standing: Standing }
  /** A round passed its deadline without evidence. */
  | { readonly kind: 'silent'; readonly standing: Standing }
  /** The expiry armed for `expires` came due (expires plus the policy's grace). */
  | { readonly kind: 'lapsed'; readonly expires: number }
  /** A round left pending by a previous run passed its deadline, and no newer round renewed it. */
  | { readonly kind: 'unanswered-after-restart' };

export interface PostureState {
  readonly posture: Posture;
  readonly reasons: readonly ResultCode[];
  /** When a fresh posture (affirming, warning) turns stale unless renewed. */
  readonly expires?: number;
}

const fresh = (p: Posture) => p === 'affirming' || p === 'warning';
const STALE: PostureState = { posture: 'stale', reasons: ['stale'] };

/** Whether a failure on a connection with this standing is the device's own. */
export function speaksForDevice(code: ResultCode, standing: Standing, current: Posture): boolean {
  if (FAILURE_SOURCE[code] === 'device' || standing === 'attested') return true;
  // A device that never attested has no posture to protect: the failures of its onboarding are
  // what operators need to see, unless another connection of it is trusted right now.
  return (current === 'enrolling' || current === 'unknown') && standing === 'unattested';
}

/** The posture after `input`, or undefined when it does not change what is recorded. */
export function nextPosture(state: PostureState, input: PostureInput): PostureState | undefined {
  switch (input.kind) {
    case 'appraised':
      return { posture: input.status, reasons: [], expires: input.expires };
    case 'refused':
      return speaksForDevice(input.code, input.standing, state.posture)
        ? { posture: 'contraindicated', reasons: [input.code] }
        : undefined;
    case 'silent':
      return input.standing === 'attested' ? STALE : undefined;
    case 'lapsed':
      return fresh(state.posture) && state.expires === input.expires ? STALE : undefined;
    case 'unanswered-after-restart':
      return fresh(state.posture) ? STALE : undefined;
  }
}

/** Whether a posture change is worth an event: the posture or its reasons differ. */
export function changed(from: PostureState, to: PostureState): boolean {
  return from.posture !== to.posture || from.reasons.join() !== to.reasons.join();
}

/**
 * Until when a connection may carry application traffic after an appraisal: its expiry when the
 * status is admitted (affirming, or warning when the policy admits it), otherwise not at all.
 */
export function trustedUntil(
  outcome: { readonly status: 'affirming' | 'warning' | 'contraindicated'; readonly expires: number },
  admitWarning: boolean,
): number {
  return outcome.status === 'affirming' || (outcome.status === 'warning' && admitWarning)
    ? outcome.expires
    : 0;
}
