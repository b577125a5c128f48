import {
  bindingDigest,
  type Claims,
  decodeClaims,
  type Evidence,
  ProtocolError,
  type ResultCode,
  sameBytes,
} from '../../shared/protocol/index.ts';
import {
  checkPcrDigest,
  checkPcrSelection,
  checkQualifyingData,
  hierarchyName,
  objectName,
  parseQuote,
  type QuoteAttest,
  type QuoteStep,
  qualifiedName,
  quoteSignatureCheck,
  runSignatureCheck,
  SIGNATURE_MISMATCH,
  type SignatureCheck,
  TPM_RH,
  type TpmPublic,
  type TpmSignature,
  toHex,
} from '../../shared/tpm/index.ts';
import type { ClockState, SwLogState } from '../model.ts';
import type { ReferenceValues } from './reference-values.ts';
import { Refusal, type Refuse, refuser } from './refusal.ts';
import { replaySwLog } from './sw-log.ts';
import { TRUST, type TrustVector } from './trust-vector.ts';

// The stages of an appraisal, one per check of PROTOCOL.md §5, each a pure function of what the
// earlier stages established. A stage either returns what it established or throws a Refusal
// naming the code, a detail for the operator, and the trustworthiness claim it settles.

/** What the gateway fixed when it issued the round. */
export interface RoundContext {
  readonly nonce: Uint8Array;
  /** The gateway's own exporter value for this connection and nonce. */
  readonly exporter: Uint8Array;
  /** PCRs asked for, ascending (policy PCRs plus swPcr). */
  readonly pcrs: readonly number[];
  /** Expected activation secret, when the round carried `activate`. */
  readonly activation?: Uint8Array;
}

/** What the gateway knows of the device before this round. */
export interface DeviceContext {
  /** The EK's public area parsed; no stage needs it (the Name stands for it). */
  readonly ek?: TpmPublic;
  readonly ekName: Uint8Array;
  /** The AK that must have signed: the enrolled one, or the candidate being activated. */
  readonly ak?: { readonly public: TpmPublic; readonly publicArea: Uint8Array };
  readonly swPcr: number;
  readonly clock?: ClockState;
  /** Wall time, ms, from the issue of the round that quoted `clock` to this appraisal. */
  readonly clockElapsedMs?: number;
  readonly swLog?: SwLogState;
  /** The EK chained to a manufacturer CA (ek-ca admission), so the TPM is known genuine. */
  readonly genuineHardware: boolean;
}

const refuse: Refuse<ResultCode> = refuser();

/** A quote step's failure as a refusal settling `claim`. */
function required<T>(step: QuoteStep<T>, claim: keyof TrustVector, value: number): T {
  if (!step.ok) refuse(step.failure, step.detail, claim, value);
  return step.value;
}

/** malformed: the body is a claims map (PROTOCOL.md §2). */
export function bodyStage(body: Uint8Array): Claims {
  try {
    return decodeClaims(body);
  } catch (e) {
    if (e instanceof ProtocolError)
      refuse('malformed', e.detail, 'instance-identity', TRUST.unexpectedEvidence);
    throw e;
  }
}

/** activation-failed: the secret the AK's TPM recovered, when the round asked for one. */
export function activationStage(claims: Claims, round: RoundContext): void {
  if (round.activation === undefined) return;
  if (claims.activation === undefined)
    refuse(
      'activation-failed',
      'the challenge asked for activation but body.activation is absent',
      'instance-identity',
      TRUST.unrecognizedInstance,
    );
  if (!sameBytes(claims.activation, round.activation))
    refuse(
      'activation-failed',
      'body.activation does not match the credential: the AK is not in the TPM that holds this EK',
      'instance-identity',
      TRUST.unrecognizedInstance,
    );
}

/** ak-unknown: there is an AK to appraise with (enrolled, or being activated). */
export function akStage(device: DeviceContext): NonNullable<DeviceContext['ak']> {
  return (
    device.ak ??
    refuse(
      'ak-unknown',
      'no AK is enrolled for this device and none is being activated',
      'instance-identity',
      TRUST.unrecognizedInstance,
    )
  );
}

/**
 * signature-invalid, all but the arithmetic: `sig` is a signature the AK can make. Returns the
 * parsed signature and the check still to run (checkedSignatureStage): here, or in a worker.
 */
export function signatureCheckStage(
  ak: TpmPublic,
  evidence: Evidence,
): { readonly sig: TpmSignature; readonly check: SignatureCheck } {
  return required(
    quoteSignatureCheck(ak, evidence.attest, evidence.sig),
    'instance-identity',
    TRUST.cryptoValidationFailed,
  );
}

/** The refusal of a signature that does not verify. */
export function signatureMismatch(): Refusal<ResultCode> {
  return new Refusal(
    'signature-invalid',
    SIGNATURE_MISMATCH,
    'instance-identity',
    TRUST.cryptoValidationFailed,
  );
}

/** signature-invalid: the check verifies. */
export function checkedSignatureStage(check: SignatureCheck): void {
  if (!runSignatureCheck(check)) throw signatureMismatch();
}

/** signature-invalid: `sig` verifies over `attest` with the AK. */
export function signatureStage(ak: TpmPublic, evidence: Evidence): TpmSignature {
  const { sig, check } = signatureCheckStage(ak, evidence);
  checkedSignatureStage(check);
  return sig;
}

/** attest-invalid: a TPMS_ATTEST of a quote. */
export function attestStage(attest: Uint8Array): QuoteAttest {
  return required(parseQuote(attest), 'instance-identity', TRUST.cryptoValidationFailed);
}

// A connection appraises the same AK every round; three hashes per round are worth keeping.
const qualifiedNames = new WeakMap<Uint8Array, { readonly ekName: Uint8Array; readonly qn: Uint8Array }>();

/** The qualified Name a Vigil AK has: created under the EK, in the endorsement hierarchy. */
export function expectedAkQualifiedName(ekName: Uint8Array, akPublicArea: Uint8Array): Uint8Array {
  const known = qualifiedNames.get(akPublicArea);
  if (known && sameBytes(known.ekName, ekName)) return known.qn;
  const qn = qualifiedName(
    qualifiedName(hierarchyName(TPM_RH.ENDORSEMENT), ekName),
    objectName(akPublicArea),
  );
  qualifiedNames.set(akPublicArea, { ekName, qn });
  return qn;
}

/**
 * ak-unknown: the TPM says the signer lives under this EK. The signature proves the AK signed;
 * the qualified Name proves which TPM holds it, so an AK of another TPM or a software key cannot
 * stand in.
 */
export function signerStage(attest: QuoteAttest, device: DeviceContext, akPublicArea: Uint8Array): void {
  const qn = expectedAkQualifiedName(device.ekName, akPublicArea);
  if (!sameBytes(attest.qualifiedSigner, qn))
    refuse(
      'ak-unknown',
      `attest.qualifiedSigner ${toHex(attest.qualifiedSigner)} is not the enrolled AK under this EK (${toHex(qn)})`,
      'instance-identity',
      TRUST.unrecognizedInstance,
    );
}

/** binding-mismatch: bound to this connection, this nonce and this body (PROTOCOL.md §4). */
export function bindingStage(
  attest: QuoteAttest,
  claims: Claims,
  round: RoundContext,
  body: Uint8Array,
): void {
  const bound = checkQualifyingData(attest, bindingDigest(round.exporter, body));
  if (!bound.ok)
    refuse(
      'binding-mismatch',
      'attest.extraData is not bound to this TLS connection, this nonce and this body',
      'instance-identity',
      TRUST.untrustworthyInstance,
    );
  if (!sameBytes(claims.nonce, round.nonce))
    refuse(
      'binding-mismatch',
      'body.nonce is not the nonce of this round',
      'instance-identity',
      TRUST.untrustworthyInstance,
    );
}

/** pcr-selection-mismatch: the quoted selection is the one asked for. */
export function pcrSelectionStage(attest: QuoteAttest, pcrs: readonly number[]): void {
  required(
    checkPcrSelection(attest, [{ hash: 'sha256', pcrs: [...pcrs] }]),
    'configuration',
    TRUST.unexpectedEvidence,
  );
}

/** pcr-digest-mismatch: the claimed values are exactly the asked PCRs and hash to the quoted digest. */
export function pcrDigestStage(
  attest: QuoteAttest,
  claims: Claims,
  pcrs: readonly number[],
  sig: TpmSignature,
): void {
  const claimed = [...claims.pcrs.keys()].sort((a, b) => a - b);
  const values = claimed.join() === pcrs.join() ? pcrs.map((i) => claims.pcrs.get(i)!) : undefined;
  if (values === undefined || !checkPcrDigest(attest, values, sig.hash).ok)
    refuse(
      'pcr-digest-mismatch',
      `body.pcrs (${claimed.join(',')}) do not hash to the quoted pcrDigest`,
      'configuration',
      TRUST.unexpectedEvidence,
    );
}

/** log-mismatch: the software log replays to the quoted swPcr and names what `sw` claims. */
export function softwareLogStage(claims: Claims, device: DeviceContext, attest: QuoteAttest): SwLogState {
  const swLog = claims.logs.sw;
  if (swLog === undefined)
    refuse(
      'log-mismatch',
      'body.logs.sw is absent; the software log is required',
      'executables',
      TRUST.unexpectedEvidence,
    );
  const replay = replaySwLog(device.swLog, attest.clock.resetCount, swLog, claims.pcrs.get(device.swPcr)!);
  if (!replay.ok) refuse('log-mismatch', replay.detail, 'executables', TRUST.contraindicatedRuntime);
  const running = replay.state.running.find((s) => s.name === claims.sw.name);
  if (running === undefined || running.version !== claims.sw.version) {
    const log = running ? `${running.name} ${running.version}` : `no entry for ${claims.sw.name}`;
    refuse(
      'log-mismatch',
      `body.sw claims ${claims.sw.name} ${claims.sw.version} but the software log says ${log}`,
      'executables',
      TRUST.contraindicatedRuntime,
    );
  }
  return replay.state;
}

/**
 * A TPM's clock runs within ±15% of real time (TPM 2.0 Part 1, Clock; the reference implementation
 * lets TPM2_ClockRateAdjust reach 16.7%): 1.2 leaves room for both.
 */
export const CLOCK_RATE_TOLERANCE = 1.2;
/** Steps of the gateway's own wall clock (NTP) and rounding, ms. */
export const CLOCK_SLACK_MS = 60_000n;

/**
 * clock-rollback: the quoted clock is a continuation of the one last seen. With the same
 * resetCount, neither the clock nor restartCount went back. And, whenever the wall time since the
 * round that quoted the last clock is known (`elapsedMs`, measured by the caller: an appraisal
 * reads no clock), the TPM clock did not run further than real time can explain, reset or not: a
 * clock does not advance while the TPM is off and cannot be moved forward but by TPM2_ClockSet,
 * which is how a restored copy of a TPM's state would be made to look newer than the last quote.
 * How far a clock goes back across a reset is not judged: a TPM resumes from its last write of the
 * clock to NV, and swtpm restarted without an orderly shutdown was measured to resume from 0 after
 * a ClockSet of three hours. Returns whether the TPM was reset since the last round (a reboot:
 * recorded, not a failure).
 */
export function clockStage(
  previous: ClockState | undefined,
  now: QuoteAttest['clock'],
  elapsedMs?: number,
): boolean {
  if (previous === undefined) return false;
  if (now.resetCount < previous.resetCount)
    refuse('clock-rollback', `resetCount went from ${previous.resetCount} back to ${now.resetCount}`);
  const rebooted = now.resetCount > previous.resetCount;
  if (!rebooted && now.restartCount < previous.restartCount)
    refuse(
      'clock-rollback',
      `restartCount went from ${previous.restartCount} back to ${now.restartCount} without a reset`,
    );
  if (!rebooted && now.clock < previous.clock)
    refuse('clock-rollback', `TPM clock went from ${previous.clock} back to ${now.clock} ms without a reset`);
  // A gateway clock that stepped back gives no measure: the check waits for the next round.
  if (elapsedMs !== undefined && elapsedMs >= 0) {
    const ran = now.clock - previous.clock;
    const most = BigInt(Math.ceil(elapsedMs * CLOCK_RATE_TOLERANCE)) + CLOCK_SLACK_MS;
    if (ran > most)
      refuse(
        'clock-rollback',
        `TPM clock ran ${ran} ms ahead (from ${previous.clock} to ${now.clock}) in ${elapsedMs} ms of wall time, more than the ${most} ms a TPM clock can: it was set forward (TPM2_ClockSet), as a restored copy of the TPM state would be`,
      );
  }
  return rebooted;
}

/** sw-not-allowed: everything the software log says runs is a registered release. */
export function softwareStage(swLog: SwLogState, reference: ReferenceValues): void {
  for (const s of swLog.running) {
    if (!reference.allowsSoftware(s.name, s.version, s.digest))
      refuse(
        'sw-not-allowed',
        `${s.name} ${s.version} (manifest ${toHex(s.digest)}) is not a registered release`,
        'executables',
        TRUST.unrecognizedRuntime,
      );
  }
}

/**
 * firmware-changed: every quoted PCR with reference values holds one of them. Returns the PCRs
 * without reference values (reported as unmeasured, never as affirmed) and how many were judged.
 */
export function firmwareStage(
  claims: Claims,
  pcrs: readonly number[],
  swPcr: number,
  reference: ReferenceValues,
): { readonly unmeasured: readonly number[]; readonly judged: number } {
  const unmeasured: number[] = [];
  let judged = 0;
  for (const i of pcrs) {
    if (i === swPcr) continue;
    const allowed = reference.allowsPcr(i, claims.pcrs.get(i)!);
    if (allowed === undefined) unmeasured.push(i);
    else if (!allowed)
      refuse(
        'firmware-changed',
        `PCR ${i} is ${toHex(claims.pcrs.get(i)!)}, not a reference value`,
        'configuration',
        TRUST.unsafeConfig,
      );
    else judged++;
  }
  return { unmeasured, judged };
}
