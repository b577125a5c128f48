import { createHash, type KeyObject } from 'node:crypto';
import { type Sign1, verifySign1 } from '../../shared/cose/sign1.ts';
import {
  type AliasClaims,
  decodeAliasCertificate,
  decodeMcuEvidence,
  identityHash,
  isIdentityHash,
  type McuClaims,
  type McuRecord,
  type McuResultCode,
  mcuChallenge,
  p256PublicKey,
  pointKeyId,
} from '../../shared/mcu/index.ts';
import { ProtocolError, sameBytes } from '../../shared/protocol/index.ts';
import { toHex } from '../../shared/tpm/index.ts';
import type { McuAdmission } from '../mcus/model.ts';
import { Refusal, type Refuse, refuser } from './refusal.ts';
import { emptyVector, TRUST, type TrustVector } from './trust-vector.ts';

// Appraisal of the MCU sub-attesters a device carries in its evidence body (RFC 9334 composite
// device; docs/protocol.md, MCU section). Each MCU is appraised on its own, in a fixed order in
// which the first failure decides, and becomes its own submodule of the EAR. Pure: the round's
// nonce and the references are arguments, so a stored round re-appraises to the same answer.
// The caller has already appraised the TPM quote whose binding signs the body: what is carried
// here is what the lead attester's TPM vouched it received this round.

/** What the gateway trusts MCUs by. */
export interface McuReferences {
  /**
   * How an operator admitted this MCU (lowercase hex SHA-256 of its identity key): for any device,
   * or for the one `device` named; undefined when it is not admitted.
   */
  admission(identityHash: string): { readonly device?: string } | undefined;
  /** Allowed firmware digests for a model, lowercase hex; undefined when none are configured. */
  firmware(model: string): ReadonlySet<string> | undefined;
}

/** The round an MCU's evidence is appraised for. */
export interface McuRoundContext {
  /** The nonce the gateway issued on the device's connection for this round. */
  readonly nonce: Uint8Array;
  /** The device whose body carried the evidence. */
  readonly deviceId: string;
}

/** What the appraisal learnt of the MCU, as far as it got. */
export interface McuFacts {
  readonly identity?: string;
  readonly model?: string;
  readonly firmware?: string;
}

export type McuAppraisal =
  | ({
      readonly ok: true;
      readonly status: 'affirming';
      readonly trust: TrustVector;
    } & Required<McuFacts>)
  | ({
      readonly ok: false;
      readonly status: 'contraindicated';
      readonly code: McuResultCode;
      readonly detail: string;
      readonly trust: TrustVector;
    } & McuFacts);

type Admitted = Pick<McuAdmission, 'identity' | 'device'>;

/** References: admitted identities (the store's) and firmware digests per model (the policy's). */
export class McuReferenceValues implements McuReferences {
  private readonly admitted: ReadonlyMap<string, { readonly device?: string }>;
  private readonly digests: ReadonlyMap<string, ReadonlySet<string>>;

  constructor(admitted: readonly Admitted[], firmware: Readonly<Record<string, readonly string[]>>) {
    for (const { identity } of admitted) {
      if (!isIdentityHash(identity.toLowerCase())) {
        throw new Error(
          `MCU identity "${identity}" is not a SHA-256 hex digest (64 hex digits) of an identity key`,
        );
      }
    }
    this.admitted = new Map(
      admitted.map((a) => [a.identity.toLowerCase(), a.device === undefined ? {} : { device: a.device }]),
    );
    const digests = new Map<string, ReadonlySet<string>>();
    for (const [model, list] of Object.entries(firmware)) {
      for (const d of list) {
        if (!/^[0-9a-fA-F]{64}$/.test(d)) {
          throw new Error(
            `firmware digest "${d}" of model ${model} is not a SHA-256 hex digest (64 hex digits)`,
          );
        }
      }
      digests.set(model, new Set(list.map((d) => d.toLowerCase())));
    }
    this.digests = digests;
  }

  admission(identityHash: string): { readonly device?: string } | undefined {
    return this.admitted.get(identityHash);
  }

  firmware(model: string): ReadonlySet<string> | undefined {
    return this.digests.get(model);
  }
}

const refuse: Refuse<McuResultCode> = refuser();

/** Runs a decoder; its `malformed` becomes this MCU's `mcu-malformed`. */
function parse<T>(decode: () => T): T {
  try {
    return decode();
  } catch (e) {
    if (e instanceof ProtocolError)
      refuse('mcu-malformed', e.detail, 'instance-identity', TRUST.unexpectedEvidence);
    throw e;
  }
}

function checkSignature(msg: Sign1, key: KeyObject, point: Uint8Array, what: string, signer: string): void {
  const kid = pointKeyId(point);
  if (!sameBytes(msg.kid, kid)) {
    refuse(
      'mcu-signature-invalid',
      `${what} names key ${toHex(msg.kid)}, not the ${signer} (${toHex(kid)})`,
      'instance-identity',
      TRUST.cryptoValidationFailed,
    );
  }
  if (!verifySign1(msg, key)) {
    refuse(
      'mcu-signature-invalid',
      `${what} does not verify with the ${signer}`,
      'instance-identity',
      TRUST.cryptoValidationFailed,
    );
  }
}

/** An alias certificate whose signature by its identity key has verified. */
interface Certified {
  readonly alias: AliasClaims;
  readonly ak: KeyObject;
}

// An MCU sends the same identity key and certificate every round until its firmware changes,
// and checking them (two key imports, one ECDSA verification) is most of an MCU's appraisal.
// So a verified pair is remembered by its bytes: the same bytes give the same verdict, which
// keeps the appraisal a function of its inputs. Only successes are kept; the oldest go first.
const certified = new Map<string, Certified>();
const MAX_CERTIFIED = 4096;

function certifiedKey(idk: Uint8Array, cert: Uint8Array): string {
  return createHash('sha256').update(idk).update(cert).digest('hex');
}

function remember(key: string, c: Certified): Certified {
  if (certified.size >= MAX_CERTIFIED) certified.delete(certified.keys().next().value!);
  certified.set(key, c);
  return c;
}

function appraiseEvidence(
  record: Extract<McuRecord, { kind: 'evidence' }>,
  round: McuRoundContext,
  refs: McuReferences,
  facts: { identity?: string; model?: string; firmware?: string },
): void {
  const identity = identityHash(record.idk);
  facts.identity = identity;
  const cacheKey = certifiedKey(record.idk, record.cert);
  const known = certified.get(cacheKey);
  // Checks in order (the first failure decides): form, admission, certificate, evidence,
  // freshness, firmware. A remembered certificate has passed its form and signature checks.
  const idKey = known ? undefined : parse(() => p256PublicKey(record.idk, 'idk'));
  const cert = known ? undefined : parse(() => decodeAliasCertificate(record.cert));
  const ev = parse(() => decodeMcuEvidence(record.ev));
  const alias = known?.alias ?? cert!.value;
  facts.model = alias.model;
  facts.firmware = toHex(alias.fw);

  const admitted = refs.admission(identity);
  if (admitted === undefined) {
    refuse(
      'mcu-identity-unknown',
      `MCU identity ${identity} (model ${alias.model}) is not admitted: if it belongs on this device, admit it with \`vigil-gateway mcu admit ${identity} --device ${round.deviceId}\``,
      'instance-identity',
      TRUST.unrecognizedInstance,
    );
  }
  if (admitted.device !== undefined && admitted.device !== round.deviceId) {
    refuse(
      'mcu-identity-unknown',
      `MCU identity ${identity} is admitted for device ${admitted.device} only, not ${round.deviceId}: relayed from that device, or moved here (then admit it again with --device ${round.deviceId})`,
      'instance-identity',
      TRUST.unrecognizedInstance,
    );
  }
  let ak = known;
  if (ak === undefined) {
    checkSignature(cert!.sign1, idKey!, record.idk, 'cert', 'identity key');
    ak = remember(cacheKey, { alias, ak: parse(() => p256PublicKey(alias.ak, 'cert.ak')) });
  }
  checkSignature(ev.sign1, ak.ak, alias.ak, 'ev', 'attestation key the cert certifies');
  if (!sameBytes(ev.value.challenge, mcuChallenge(round.nonce, record.idk))) {
    refuse(
      'mcu-binding-mismatch',
      "ev answers another challenge than this round's nonce and this MCU's identity give: replayed or moved evidence",
      'instance-identity',
      TRUST.untrustworthyInstance,
    );
  }
  const allowed = refs.firmware(alias.model);
  if (allowed === undefined) {
    refuse(
      'mcu-firmware-changed',
      `no reference firmware digests are configured for model ${alias.model}: firmware ${facts.firmware} cannot be judged`,
      'executables',
      TRUST.unrecognizedRuntime,
    );
  }
  if (!allowed.has(facts.firmware)) {
    refuse(
      'mcu-firmware-changed',
      `firmware ${facts.firmware} is not a reference value of model ${alias.model}`,
      'executables',
      TRUST.unrecognizedRuntime,
    );
  }
}

/** Appraises one MCU's record for a round; `undefined` is a slot the device did not report. */
export function appraiseMcu(
  record: McuRecord | undefined,
  round: McuRoundContext,
  refs: McuReferences,
): McuAppraisal {
  const trust = emptyVector();
  const facts: { identity?: string; model?: string; firmware?: string } = {};
  try {
    if (record === undefined) refuse('mcu-absent', 'the device reported nothing for this MCU');
    if (record.kind === 'fault') {
      refuse(
        record.fault === 'malformed' ? 'mcu-malformed' : 'mcu-absent',
        `the agent reported ${record.fault}: ${record.detail}`,
      );
    }
    appraiseEvidence(record, round, refs, facts);
  } catch (e) {
    if (!(e instanceof Refusal)) throw e;
    return { ...(e as Refusal<McuResultCode>).outcome(trust), ...facts };
  }
  trust['instance-identity'] = TRUST.trustworthyInstance;
  trust.executables = TRUST.approvedRuntime;
  const { identity, model, firmware } = facts as Required<McuFacts>;
  return { ok: true, status: 'affirming', trust, identity, model, firmware };
}

/**
 * Appraises every MCU of a round: those the device carried and those the gateway expects (an
 * expected slot the body lacks is `mcu-absent`), by slot name.
 */
export function appraiseMcus(
  claims: McuClaims | undefined,
  round: McuRoundContext,
  refs: McuReferences,
  expectedSlots: readonly string[] = [],
): ReadonlyMap<string, McuAppraisal> {
  const slots = [...new Set([...expectedSlots, ...(claims?.keys() ?? [])])].sort();
  return new Map(slots.map((slot) => [slot, appraiseMcu(claims?.get(slot), round, refs)]));
}
