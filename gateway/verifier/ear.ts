import { createPrivateKey, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import { decodeSign1, keyId, signSign1, verifySign1 } from '../../shared/cose/sign1.ts';
import {
  decodeEar,
  EAR_PROFILE,
  type Ear,
  earToJson,
  encodeEar,
  type TrustVector,
} from '../../shared/protocol/ear.ts';
import type { ResultCode, Status } from '../../shared/protocol/index.ts';
import { type OperateClaims, signOperateToken } from '../../shared/protocol/operate-token.ts';

// The gateway's attestation results (draft-ietf-rats-ear), signed ES256 by its EAR key: as a CWT
// in every `result` (constrained devices pay for every byte of every round), and as a JWT of the
// very same claims for the operator API, so a relying party other than the gateway can check what
// the gateway concluded, and when, in the serialization it prefers.

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
  /** Sub-attesters appraised in the same round (their own submodules). */
  readonly submods?: Ear['submods'];
}

const b64url = (b: Uint8Array | string) => Buffer.from(b).toString('base64url');

export class EarSigner {
  /** COSE kid: the first 8 bytes of SHA-256 of the public key's SEC1 point. */
  readonly kid: Uint8Array;
  private readonly jwtHeader: string;

  constructor(private readonly key: KeyObject) {
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new Error('the EAR signing key must be an EC P-256 private key (ES256)');
    }
    this.kid = keyId(createPublicKey(key));
    this.jwtHeader = b64url(JSON.stringify({ alg: 'ES256', kid: b64url(this.kid) }));
  }

  static fromPem(pem: string | Buffer): EarSigner {
    return new EarSigner(createPrivateKey(pem));
  }

  publicKey(): KeyObject {
    return createPublicKey(this.key);
  }

  /** The claims of a result. Claims the verifier did not make are absent (AR4SI). */
  claims(e: EarInput): Ear {
    return {
      profile: EAR_PROFILE,
      iat: Math.floor(e.issuedAt / 1000),
      exp: Math.floor(e.expires / 1000),
      nonce: e.nonce,
      verifier: { developer: 'vigil', build: e.verifierBuild },
      submods: {
        [e.deviceId]: {
          status: e.status,
          trust: e.trust,
          policyId: e.policyId,
          ...(e.codes.length > 0 && { codes: e.codes }),
        },
        ...e.submods,
      },
    };
  }

  /** The CWT a `result` carries. */
  sign(e: EarInput): Uint8Array {
    return signSign1(this.key, encodeEar(this.claims(e)), this.kid);
  }

  /** An `operate` command's token (PROTOCOL.md §6.2), signed with the same key as results. */
  operateToken(c: OperateClaims): Uint8Array {
    return signOperateToken(this.key, c);
  }

  /** The same claims as a JWT (ES256), for JSON tools. */
  jwt(ear: Ear): string {
    const input = `${this.jwtHeader}.${b64url(JSON.stringify(earToJson(ear)))}`;
    const sig = sign('sha256', Buffer.from(input), { key: this.key, dsaEncoding: 'ieee-p1363' });
    return `${input}.${b64url(sig)}`;
  }
}

/** Verifies a CWT EAR with the gateway's public key; returns its claims, or throws. */
export function verifyEarCwt(cwt: Uint8Array, key: KeyObject): Ear {
  const msg = decodeSign1(cwt);
  if (!verifySign1(msg, key)) throw new Error('EAR: the CWT signature does not verify with the gateway key');
  return decodeEar(msg.payload);
}

/** Verifies a CWT EAR and returns its claims in the JSON serialization (what the JWT carries). */
export function verifyEar(cwt: Uint8Array, key: KeyObject): Record<string, unknown> {
  return earToJson(verifyEarCwt(cwt, key));
}

/** Verifies an EAR JWT's ES256 signature and returns its payload; throws on any defect. */
export function verifyEarJwt(jwt: string, key: KeyObject): Record<string, unknown> {
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
