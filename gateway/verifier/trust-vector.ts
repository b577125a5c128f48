import type { TrustClaim } from '../../shared/protocol/ear.ts';
import type { Status } from '../../shared/protocol/index.ts';

// AR4SI trustworthiness claims (draft-ietf-rats-ar4si §2.3). Values: 0 no claim, 1 unexpected
// evidence, 99 cryptographic validation failed; per claim 2.. affirming, 32.. warning, 96..
// contraindicated. A claim that was not measured stays 0: "unmeasured" is never "affirmed".
export const TRUST = {
  noClaim: 0,
  unexpectedEvidence: 1,
  cryptoValidationFailed: 99,
  // instance-identity
  trustworthyInstance: 2,
  untrustworthyInstance: 96,
  unrecognizedInstance: 97,
  // configuration
  approvedConfig: 2,
  unsafeConfig: 96,
  // executables
  approvedRuntime: 2,
  unrecognizedRuntime: 33,
  contraindicatedRuntime: 96,
  // file-system
  approvedFiles: 2,
  contraindicatedFiles: 96,
  // hardware
  genuineHardware: 2,
  unsafeHardware: 32,
  unrecognizedHardware: 97,
} as const;

/** The vector an appraisal fills in, every claim present (0: no claim). */
export type TrustVector = Record<TrustClaim, number>;

export function emptyVector(): TrustVector {
  return {
    'instance-identity': 0,
    configuration: 0,
    executables: 0,
    'file-system': 0,
    hardware: 0,
    'runtime-opaque': 0,
    'storage-opaque': 0,
    'sourced-data': 0,
  };
}

function tier(value: number): Status {
  if (value >= 96 || value < 0) return 'contraindicated';
  if (value >= 32) return 'warning';
  if (value >= 2) return 'affirming';
  return 'none';
}

const RANK: Record<Status, number> = { none: 0, affirming: 1, warning: 2, contraindicated: 3 };

/** The worst tier over the claims that were made (EAR's ear.status). */
export function overallStatus(v: TrustVector): Status {
  let worst: Status = 'none';
  for (const value of Object.values(v)) {
    const t = tier(value);
    if (RANK[t] > RANK[worst]) worst = t;
  }
  return worst;
}
