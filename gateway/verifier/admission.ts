import { X509Certificate } from 'node:crypto';
import type { ResultCode } from '../../shared/protocol/index.ts';
import { publicKey, type TpmPublic } from '../../shared/tpm/index.ts';
import type { AdmissionMode } from '../policy/policy.ts';

// PROTOCOL.md §3: whether an EK the gateway has not enrolled may onboard.

export type AdmissionOutcome =
  | { readonly ok: true; readonly genuineHardware: boolean }
  | { readonly ok: false; readonly code: ResultCode; readonly detail: string };

export interface AdmissionInput {
  readonly ek: TpmPublic;
  readonly ekHash: string;
  readonly ekCert?: Uint8Array;
  readonly attester: 'tpm2' | 'sim';
}

export interface AdmissionPolicy {
  readonly mode: AdmissionMode;
  readonly allowSim: boolean;
  /** Manufacturer CA certificates, for `ek-ca` (and to recognise genuine hardware in any mode). */
  readonly manufacturerCas: readonly X509Certificate[];
  isAllowlisted(ekHash: string): boolean;
}

function sameKey(cert: X509Certificate, ek: TpmPublic): boolean {
  const a = cert.publicKey.export({ format: 'jwk' });
  const b = publicKey(ek).export({ format: 'jwk' });
  return a.kty === b.kty && a.x === b.x && a.y === b.y && a.n === b.n && a.e === b.e;
}

/** Whether the EK certificate is for this EK and chains (directly or via the bundle) to a CA. */
export function ekChainsToCa(
  ekCert: Uint8Array,
  ek: TpmPublic,
  cas: readonly X509Certificate[],
): string | undefined {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(ekCert);
  } catch (e) {
    return `ekCert is not a DER X.509 certificate (${(e as Error).message})`;
  }
  if (!sameKey(cert, ek)) return 'ekCert certifies another key than this EK';
  let current = cert;
  for (let depth = 0; depth < 4; depth++) {
    const issuer = cas.find((ca) => current.checkIssued(ca) && current.verify(ca.publicKey));
    if (issuer === undefined)
      return `ekCert (issuer "${current.issuer}") does not chain to a configured manufacturer CA`;
    if (issuer.subject === issuer.issuer) return undefined;
    current = issuer;
  }
  return 'ekCert chain is longer than 4 certificates';
}

export function admit(input: AdmissionInput, policy: AdmissionPolicy): AdmissionOutcome {
  if (input.attester === 'sim' && !policy.allowSim) {
    return {
      ok: false,
      code: 'ek-not-admitted',
      detail: "attester 'sim' has no hardware root; the policy does not allow simulated attesters (allowSim)",
    };
  }
  const chainError =
    input.ekCert === undefined
      ? 'no ekCert was sent'
      : ekChainsToCa(input.ekCert, input.ek, policy.manufacturerCas);
  const genuineHardware = input.attester === 'tpm2' && chainError === undefined;
  switch (policy.mode) {
    case 'open':
      return { ok: true, genuineHardware };
    case 'allowlist':
      return policy.isAllowlisted(input.ekHash)
        ? { ok: true, genuineHardware }
        : {
            ok: false,
            code: 'ek-not-admitted',
            detail: `EK ${input.ekHash} is not on the allowlist: admit it with \`vigil-gateway admit --ek ${input.ekHash}\``,
          };
    case 'ek-ca':
      return chainError === undefined
        ? { ok: true, genuineHardware }
        : {
            ok: false,
            code: 'ek-not-admitted',
            detail: `${chainError}; the ek-ca policy admits only EKs certified by a configured manufacturer CA`,
          };
  }
}
