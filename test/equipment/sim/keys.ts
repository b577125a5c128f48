import { createECDH, createHash, createPrivateKey, type KeyObject, randomBytes } from 'node:crypto';
import {
  AK_TEMPLATE,
  type EccPublic,
  ekTemplate,
  hierarchyName,
  marshalPublic,
  objectName,
  qualifiedName,
  TPM_RH,
} from '../../../shared/tpm/index.ts';

// The keys a simulated TPM holds, in software. Each public area has exactly the shape a TPM
// would give (the EK follows the TCG default template L-2, the AK Vigil's template), so a verifier
// computes the same Names, qualified Names and credentials as for hardware. What a software key
// cannot give is a hardware root: there is no EK certificate, and hello says `attester: 'sim'`.

/** A P-256 key: the private scalar (for ECDH), a signing KeyObject, and the public point. */
export interface SoftKey {
  readonly d: Uint8Array;
  readonly x: Uint8Array;
  readonly y: Uint8Array;
  readonly privateKey: KeyObject;
}

// P-256 group order: a 256-bit hash is below it with probability 1 - 2^-32; the rare miss is
// simply rehashed, so a seed always gives a key.
const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;

function scalarFrom(seed: Uint8Array | undefined, label: string): Uint8Array {
  if (seed === undefined) return new Uint8Array(randomBytes(32));
  for (let i = 0; ; i++) {
    const d = createHash('sha256').update(seed).update(`${label}/${i}`).digest();
    const v = BigInt(`0x${d.toString('hex')}`);
    if (v !== 0n && v < P256_N) return new Uint8Array(d);
  }
}

const b64u = (b: Uint8Array) => Buffer.from(b).toString('base64url');

/** A P-256 key from a seed (same seed, same key: stable device ids across runs) or at random. */
export function softKey(seed: Uint8Array | undefined, label: string): SoftKey {
  for (;;) {
    const d = scalarFrom(seed, label);
    const ecdh = createECDH('prime256v1');
    try {
      ecdh.setPrivateKey(d);
    } catch {
      // Only reachable for an out-of-range random scalar; draw again.
      continue;
    }
    const point = ecdh.getPublicKey();
    const x = new Uint8Array(point.subarray(1, 33));
    const y = new Uint8Array(point.subarray(33, 65));
    const privateKey = createPrivateKey({
      key: { kty: 'EC', crv: 'P-256', d: b64u(d), x: b64u(x), y: b64u(y) },
      format: 'jwk',
    });
    return { d, x, y, privateKey };
  }
}

/** The simulated TPM's identity: EK and AK with their public areas and Names. */
export interface SimKeys {
  readonly ek: SoftKey;
  readonly ak: SoftKey;
  readonly ekPublic: EccPublic;
  /** Marshalled TPMT_PUBLIC, as sent in hello.ek. */
  readonly ekPublicArea: Uint8Array;
  readonly akPublic: EccPublic;
  readonly akPublicArea: Uint8Array;
  readonly akName: Uint8Array;
  /** What a TPM puts in TPMS_ATTEST.qualifiedSigner for this AK: created under the EK. */
  readonly akQualifiedName: Uint8Array;
}

export function simKeys(seed?: Uint8Array): SimKeys {
  const ek = softKey(seed, 'vigil-sim/ek');
  const ak = softKey(seed, 'vigil-sim/ak');
  const eccEk = ekTemplate('ecc');
  if (eccEk.type !== 'ecc') throw new Error('ekTemplate("ecc") is not an ECC template');
  const ekPublic: EccPublic = { ...eccEk, unique: { x: ek.x, y: ek.y } };
  const akPublic: EccPublic = { ...(AK_TEMPLATE as EccPublic), unique: { x: ak.x, y: ak.y } };
  const ekPublicArea = marshalPublic(ekPublic);
  const akPublicArea = marshalPublic(akPublic);
  const akName = objectName(akPublicArea);
  const akQualifiedName = qualifiedName(
    qualifiedName(hierarchyName(TPM_RH.ENDORSEMENT), objectName(ekPublicArea)),
    akName,
  );
  return { ek, ak, ekPublic, ekPublicArea, akPublic, akPublicArea, akName, akQualifiedName };
}
