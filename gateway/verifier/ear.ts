import { createPrivateKey, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import type { ResultCode, Status } from '../../shared/protocol/index.ts';
import type { TrustVector } from './trust-vector.ts';

// EAR (draft-ietf-rats-ear): an attestation result as a JWT, signed ES256 by the gateway, so a
// relying party other than the gateway can check what the gateway concluded and when.

export const EAR_PROFILE = 'tag:github.com,2023:veraison/ear';

export interface EarInput {
  readonly deviceId: string;
  readonly status: Status;
  readonly trust: TrustVector;
  readonly codes: readonly ResultCode[];
  readonly nonce: Uint8Array;
  readonly issuedAt: number;
  readonly expires: number;
  readonly policyId: string;
  readonly verifierBuild: string;
}

const b64url = (b: Uint8Array | string) => Buffer.from(b).toString('base64url');

export class EarSigner {
  private readonly header: string;

  constructor(
    private readonly key: KeyObject,
    readonly keyId: string,
  ) {
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new Error('the EAR signing key must be an EC P-256 private key (ES256)');
    }
    this.header = b64url(JSON.stringify({ alg: 'ES256', kid: keyId }));
  }

  static fromPem(pem: string | Buffer, keyId: string): EarSigner {
    return new EarSigner(createPrivateKey(pem), keyId);
  }

  publicKey(): KeyObject {
    return createPublicKey(this.key);
  }

  sign(e: EarInput): string {
    const payload = {
      eat_profile: EAR_PROFILE,
      iat: Math.floor(e.issuedAt / 1000),
      exp: Math.floor(e.expires / 1000),
      eat_nonce: b64url(e.nonce),
      'ear.verifier-id': { developer: 'vigil', build: e.verifierBuild },
      submods: {
        [e.deviceId]: {
          'ear.status': e.status,
          // Claims the verifier did not make are absent (AR4SI: absent means no claim), which keeps
          // the EAR, sent with every result, small.
          'ear.trustworthiness-vector': Object.fromEntries(
            Object.entries(e.trust).filter(([, v]) => v !== 0),
          ),
          'ear.appraisal-policy-id': e.policyId,
          ...(e.codes.length > 0 && { 'vigil.codes': e.codes }),
        },
      },
    };
    const input = `${this.header}.${b64url(JSON.stringify(payload))}`;
    const sig = sign('sha256', Buffer.from(input), { key: this.key, dsaEncoding: 'ieee-p1363' });
    return `${input}.${b64url(sig)}`;
  }
}

/** Verifies an EAR's ES256 signature and returns its payload; throws on any defect. */
export function verifyEar(jwt: string, key: KeyObject): Record<string, unknown> {
  const parts = jwt.split('.');
  if (parts.length !== 3) throw new Error(`EAR: expected a JWT of 3 parts, got ${parts.length}`);
  const [h, p, s] = parts as [string, string, string];
  const header = JSON.parse(Buffer.from(h, 'base64url').toString()) as { alg?: string };
  if (header.alg !== 'ES256') throw new Error(`EAR: expected alg ES256, got ${String(header.alg)}`);
  const ok = verify(
    'sha256',
    Buffer.from(`${h}.${p}`),
    { key, dsaEncoding: 'ieee-p1363' },
    Buffer.from(s, 'base64url'),
  );
  if (!ok) throw new Error('EAR: signature does not verify with the gateway key');
  return JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
}
