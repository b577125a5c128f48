import { createHash, type X509Certificate } from 'node:crypto';
import type { McuAdmission } from '../mcus/model.ts';
import type { Release } from '../model.ts';
import { entriesAdmitting } from '../store/allowlist.ts';
import type { AdmissionPolicy } from '../verifier/admission.ts';
import { McuPolicy } from '../verifier/mcu-policy.ts';
import { ReferenceValues } from '../verifier/reference-values.ts';
import type { ConnectionLimits, DeviceQuotas, Policy } from './policy.ts';

/**
 * The policy as the gateway applies it: the operator's file joined with the releases and the
 * allowlist in the store and the CA bundle loaded, precomputed so that a hello and an appraisal
 * only do lookups and never read the database. Rebuilt whenever one of its sources changes.
 */
export interface RuntimePolicy {
  /** Identifies this policy in EARs (ear.appraisal-policy-id): a digest of everything in it. */
  readonly id: string;
  readonly pcrs: readonly number[];
  readonly periodicMs: number;
  readonly jitter: number;
  readonly deadlineMs: number;
  readonly expiryMs: number;
  readonly graceMs: number;
  readonly admitWarning: boolean;
  readonly maxPayload: number;
  readonly connections: ConnectionLimits;
  readonly quotas: DeviceQuotas;
  readonly admission: AdmissionPolicy;
  readonly reference: ReferenceValues;
  /** MCU sub-attesters: admissions, reference firmware, expected slots, what a failure does. */
  readonly mcus: McuPolicy;
  /** Policy `rollouts.artifactBytesPerSecond`. */
  readonly artifactBytesPerSecond: number;
}

export function buildRuntimePolicy(
  policy: Policy,
  ekCas: readonly X509Certificate[],
  releases: readonly Release[],
  allowlist: readonly string[],
  mcuAdmissions: readonly McuAdmission[] = [],
): RuntimePolicy {
  const admitted = new Set(allowlist);
  const software = [
    ...policy.referenceValues.software,
    ...releases.map(({ name, version, digest }) => ({ name, version, digest })),
  ];
  const pcrRefs = new Map(Object.entries(policy.referenceValues.pcrs).map(([i, v]) => [Number(i), v]));
  // 48 bits tell a gateway's policies apart; the id travels in every EAR, so it is kept short.
  const id = createHash('sha256').update(JSON.stringify({ policy, software })).digest('hex').slice(0, 12);
  return {
    id: `vp:${id}`,
    pcrs: policy.pcrs,
    ...policy.rounds,
    admitWarning: policy.admitWarning,
    maxPayload: policy.maxPayload,
    connections: policy.connections,
    quotas: policy.quotas,
    admission: {
      mode: policy.admission.mode,
      allowSim: policy.allowSim,
      manufacturerCas: ekCas,
      isAllowlisted: (ekHash) => entriesAdmitting(ekHash).some((e) => admitted.has(e)),
    },
    reference: new ReferenceValues(pcrRefs, software),
    mcus: new McuPolicy(policy.mcus, mcuAdmissions),
    artifactBytesPerSecond: policy.rollouts.artifactBytesPerSecond,
  };
}
