import type { Claims, Evidence, ResultCode } from '../../shared/protocol/index.ts';
import type { SignatureCheck } from '../../shared/tpm/index.ts';
import type { ClockState, SwLogState } from '../model.ts';
import type { ReferenceValues } from './reference-values.ts';
import { Refusal } from './refusal.ts';
import {
  activationStage,
  akStage,
  attestStage,
  bindingStage,
  bodyStage,
  checkedSignatureStage,
  clockStage,
  type DeviceContext,
  firmwareStage,
  pcrDigestStage,
  pcrSelectionStage,
  type RoundContext,
  signatureCheckStage,
  signatureMismatch,
  signerStage,
  softwareLogStage,
  softwareStage,
} from './stages.ts';
import { emptyVector, overallStatus, TRUST, type TrustVector } from './trust-vector.ts';

export { type DeviceContext, expectedAkQualifiedName, type RoundContext } from './stages.ts';

/**
 * With `deferSignature`, an appraisal leaves the AK's signature to its caller (a worker pool): it
 * carries the check in `signature`, and only `withSignature` makes it final.
 */
export interface AppraiseOptions {
  readonly deferSignature?: boolean;
}

/** The signature check an appraisal still owes; settled by `withSignature`. */
interface Owed {
  readonly signature?: SignatureCheck;
}

export type Appraisal = (
  | {
      readonly ok: true;
      readonly status: 'affirming' | 'warning';
      readonly claims: Claims;
      readonly clock: ClockState;
      readonly swLog: SwLogState;
      readonly rebooted: boolean;
      readonly trust: TrustVector;
      /** PCRs quoted that no reference value covers: reported, not judged. */
      readonly unmeasured: readonly number[];
    }
  | {
      readonly ok: false;
      readonly status: 'contraindicated';
      readonly code: ResultCode;
      readonly detail: string;
      readonly trust: TrustVector;
    }
) &
  Owed;

/**
 * Appraises one round's Evidence in the order of PROTOCOL.md §5 (after the round checks, which
 * the caller does because they need the connection): the first failure decides. Pure: no I/O,
 * no clock, so a stored round can be re-appraised later with the same answer.
 */
export function appraise(
  evidence: Evidence,
  round: RoundContext,
  device: DeviceContext,
  reference: ReferenceValues,
  options: AppraiseOptions = {},
): Appraisal {
  const trust = emptyVector();
  let owed: Owed = {};
  try {
    const claims = bodyStage(evidence.body); // malformed
    activationStage(claims, round); // activation-failed
    const ak = akStage(device); // ak-unknown
    const { sig, check } = signatureCheckStage(ak.public, evidence); // signature-invalid (its form)
    if (options.deferSignature) owed = { signature: check };
    else checkedSignatureStage(check); // signature-invalid
    const attest = attestStage(evidence.attest); // attest-invalid
    signerStage(attest, device, ak.publicArea); // ak-unknown
    bindingStage(attest, claims, round, evidence.body); // binding-mismatch
    trust['instance-identity'] = TRUST.trustworthyInstance;
    trust.hardware = device.genuineHardware ? TRUST.genuineHardware : TRUST.noClaim;
    pcrSelectionStage(attest, round.pcrs); // pcr-selection-mismatch
    pcrDigestStage(attest, claims, round.pcrs, sig); // pcr-digest-mismatch
    const swLog = softwareLogStage(claims, device, attest); // log-mismatch
    const rebooted = clockStage(device.clock, attest.clock, device.clockElapsedMs); // clock-rollback
    softwareStage(swLog, reference); // sw-not-allowed
    trust.executables = TRUST.approvedRuntime;
    const firmware = firmwareStage(claims, round.pcrs, device.swPcr, reference); // firmware-changed
    if (firmware.judged > 0) trust.configuration = TRUST.approvedConfig;
    return {
      ok: true,
      status: overallStatus(trust) === 'warning' ? 'warning' : 'affirming',
      claims,
      clock: {
        clock: attest.clock.clock,
        resetCount: attest.clock.resetCount,
        restartCount: attest.clock.restartCount,
      },
      swLog,
      rebooted,
      trust,
      unmeasured: firmware.unmeasured,
      ...owed,
    };
  } catch (e) {
    if (!(e instanceof Refusal)) throw e;
    return { ...(e as Refusal<ResultCode>).outcome(trust), ...owed };
  }
}

/**
 * The final appraisal once the signature it owed was checked. §5's order holds: a bad signature
 * decides over anything the later stages found, and nothing the earlier stages found is owed one.
 */
export function withSignature(a: Appraisal, valid: boolean): Appraisal {
  if (a.signature === undefined) return a;
  if (!valid) return signatureMismatch().outcome(emptyVector());
  const { signature: _settled, ...final } = a;
  return final;
}
