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
  hierarchyName,
  objectName,
  parseQuoteAttest,
  parseSignature,
  pcrDigest,
  type QuoteAttest,
  qualifiedName,
  samePcrSelection,
  TPM_RH,
  TpmFormatError,
  type TpmPublic,
  toHex,
  verifySignature,
} from '../../shared/tpm/index.ts';
import type { ClockState, SwLogState } from '../model.ts';
import type { ReferenceValues } from './reference-values.ts';
import { replaySwLog } from './sw-log.ts';
import { emptyVector, overallStatus, TRUST, type TrustVector } from './trust-vector.ts';

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
  readonly ek: TpmPublic;
  readonly ekName: Uint8Array;
  /** The AK that must have signed: the enrolled one, or the candidate being activated. */
  readonly ak?: { readonly public: TpmPublic; readonly publicArea: Uint8Array };
  readonly swPcr: number;
  readonly clock?: ClockState;
  readonly swLog?: SwLogState;
  /** The EK chained to a manufacturer CA (ek-ca admission), so the TPM is known genuine. */
  readonly genuineHardware: boolean;
}

export type Appraisal =
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
    };

class Refusal {
  constructor(
    readonly code: ResultCode,
    readonly detail: string,
    readonly claim?: keyof TrustVector,
    readonly value?: number,
  ) {}
}

function refuse(code: ResultCode, detail: string, claim?: keyof TrustVector, value?: number): never {
  throw new Refusal(code, detail, claim, value);
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

function checkClock(previous: ClockState | undefined, now: QuoteAttest['clock']): boolean {
  if (previous === undefined) return false;
  if (now.resetCount < previous.resetCount) {
    refuse('clock-rollback', `resetCount went from ${previous.resetCount} back to ${now.resetCount}`);
  }
  if (now.resetCount > previous.resetCount) return true;
  if (now.restartCount < previous.restartCount) {
    refuse(
      'clock-rollback',
      `restartCount went from ${previous.restartCount} back to ${now.restartCount} without a reset`,
    );
  }
  if (now.clock < previous.clock) {
    refuse('clock-rollback', `TPM clock went from ${previous.clock} back to ${now.clock} ms without a reset`);
  }
  return false;
}

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
): Appraisal {
  const trust = emptyVector();
  try {
    let claims: Claims;
    try {
      claims = decodeClaims(evidence.body);
    } catch (e) {
      if (e instanceof ProtocolError)
        refuse('malformed', e.detail, 'instance-identity', TRUST.unexpectedEvidence);
      throw e;
    }

    if (round.activation !== undefined) {
      if (claims.activation === undefined) {
        refuse(
          'activation-failed',
          'the challenge asked for activation but body.activation is absent',
          'instance-identity',
          TRUST.unrecognizedInstance,
        );
      }
      if (!sameBytes(claims.activation, round.activation)) {
        refuse(
          'activation-failed',
          'body.activation does not match the credential: the AK is not in the TPM that holds this EK',
          'instance-identity',
          TRUST.unrecognizedInstance,
        );
      }
    }

    const ak =
      device.ak ??
      refuse(
        'ak-unknown',
        'no AK is enrolled for this device and none is being activated',
        'instance-identity',
        TRUST.unrecognizedInstance,
      );

    let signatureOk = false;
    try {
      signatureOk = verifySignature(ak.public, evidence.attest, parseSignature(evidence.sig));
    } catch (e) {
      if (!(e instanceof TpmFormatError)) throw e;
      refuse(
        'signature-invalid',
        `sig is not a TPMT_SIGNATURE: ${e.message}`,
        'instance-identity',
        TRUST.cryptoValidationFailed,
      );
    }
    if (!signatureOk) {
      refuse(
        'signature-invalid',
        'sig does not verify over attest with the AK',
        'instance-identity',
        TRUST.cryptoValidationFailed,
      );
    }

    let attest: QuoteAttest;
    try {
      attest = parseQuoteAttest(evidence.attest);
    } catch (e) {
      if (!(e instanceof TpmFormatError)) throw e;
      refuse('attest-invalid', e.message, 'instance-identity', TRUST.cryptoValidationFailed);
    }
    // The signature proves the AK signed; the qualified Name proves the TPM says that AK lives
    // under this EK, so an AK from another TPM (or a software key) cannot stand in.
    const qn = expectedAkQualifiedName(device.ekName, ak.publicArea);
    if (!sameBytes(attest.qualifiedSigner, qn)) {
      refuse(
        'ak-unknown',
        `attest.qualifiedSigner ${toHex(attest.qualifiedSigner)} is not the enrolled AK under this EK (${toHex(qn)})`,
        'instance-identity',
        TRUST.unrecognizedInstance,
      );
    }

    if (!sameBytes(attest.extraData, bindingDigest(round.exporter, evidence.body))) {
      refuse(
        'binding-mismatch',
        'attest.extraData is not bound to this TLS connection, this nonce and this body',
        'instance-identity',
        TRUST.untrustworthyInstance,
      );
    }
    if (!sameBytes(claims.nonce, round.nonce)) {
      refuse(
        'binding-mismatch',
        'body.nonce is not the nonce of this round',
        'instance-identity',
        TRUST.untrustworthyInstance,
      );
    }
    trust['instance-identity'] = TRUST.trustworthyInstance;
    trust.hardware = device.genuineHardware ? TRUST.genuineHardware : TRUST.noClaim;

    const asked = [{ hash: 'sha256' as const, pcrs: [...round.pcrs] }];
    if (
      !samePcrSelection(
        attest.pcrSelect.filter((b) => b.pcrs.length > 0),
        asked,
      )
    ) {
      const got = attest.pcrSelect.map((b) => `${b.hash}:${b.pcrs.join(',')}`).join(' ') || 'nothing';
      refuse(
        'pcr-selection-mismatch',
        `quoted ${got}, asked sha256:${round.pcrs.join(',')}`,
        'configuration',
        TRUST.unexpectedEvidence,
      );
    }
    const claimed = [...claims.pcrs.keys()].sort((a, b) => a - b);
    if (
      claimed.join() !== round.pcrs.join() ||
      !sameBytes(pcrDigest(round.pcrs.map((i) => claims.pcrs.get(i)!)), attest.pcrDigest)
    ) {
      refuse(
        'pcr-digest-mismatch',
        `body.pcrs (${claimed.join(',')}) do not hash to the quoted pcrDigest`,
        'configuration',
        TRUST.unexpectedEvidence,
      );
    }

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

    const rebooted = checkClock(device.clock, attest.clock);

    for (const s of replay.state.running) {
      if (!reference.allowsSoftware(s.name, s.version, s.digest)) {
        refuse(
          'sw-not-allowed',
          `${s.name} ${s.version} (manifest ${toHex(s.digest)}) is not a registered release`,
          'executables',
          TRUST.unrecognizedRuntime,
        );
      }
    }
    trust.executables = TRUST.approvedRuntime;

    const unmeasured: number[] = [];
    let judged = 0;
    for (const i of round.pcrs) {
      if (i === device.swPcr) continue;
      const allowed = reference.allowsPcr(i, claims.pcrs.get(i)!);
      if (allowed === undefined) unmeasured.push(i);
      else if (!allowed) {
        refuse(
          'firmware-changed',
          `PCR ${i} is ${toHex(claims.pcrs.get(i)!)}, not a reference value`,
          'configuration',
          TRUST.unsafeConfig,
        );
      } else judged++;
    }
    if (judged > 0) trust.configuration = TRUST.approvedConfig;

    const status = overallStatus(trust);
    return {
      ok: true,
      status: status === 'warning' ? 'warning' : 'affirming',
      claims,
      clock: {
        clock: attest.clock.clock,
        resetCount: attest.clock.resetCount,
        restartCount: attest.clock.restartCount,
      },
      swLog: replay.state,
      rebooted,
      trust,
      unmeasured,
    };
  } catch (e) {
    if (!(e instanceof Refusal)) throw e;
    if (e.claim !== undefined && e.value !== undefined) trust[e.claim] = e.value;
    return { ok: false, status: 'contraindicated', code: e.code, detail: e.detail, trust };
  }
}
