import { fromHex } from './bytes.ts';
import { TPM_ALG, TPM_ECC_CURVE, TPMA_OBJECT } from './constants.ts';
import type { HashScheme, SymmetricDef, TpmPublic } from './public.ts';

/**
 * PolicyA (TCG EK Credential Profile 2.x §B.3.3): PolicySecret(TPM_RH_ENDORSEMENT), SHA-256.
 * Using the EK needs a policy session that satisfied it.
 */
export const EK_POLICY_A_SHA256 = '837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa';

const EK_ATTRIBUTES =
  TPMA_OBJECT.fixedTPM |
  TPMA_OBJECT.fixedParent |
  TPMA_OBJECT.sensitiveDataOrigin |
  TPMA_OBJECT.adminWithPolicy |
  TPMA_OBJECT.restricted |
  TPMA_OBJECT.decrypt;

const AES_128_CFB: SymmetricDef = { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB };

/**
 * The default EK templates, L-1 (RSA-2048) and L-2 (ECC NIST P-256), TCG EK Credential Profile
 * 2.x §B.3.3/§B.3.4. The unique field is zero-filled to the key size, as the profile asks; with
 * it, CreatePrimary always yields the same EK, so it need not be persisted.
 */
export function ekTemplate(kind: 'ecc' | 'rsa'): TpmPublic {
  const common = {
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: EK_ATTRIBUTES,
    authPolicy: fromHex(EK_POLICY_A_SHA256),
    symmetric: { ...AES_128_CFB },
    scheme: null,
  };
  if (kind === 'ecc') {
    return {
      type: 'ecc',
      ...common,
      curve: TPM_ECC_CURVE.NIST_P256,
      kdf: null,
      unique: { x: new Uint8Array(32), y: new Uint8Array(32) },
    };
  }
  return { type: 'rsa', ...common, keyBits: 2048, exponent: 0, unique: { n: new Uint8Array(256) } };
}

const ECDSA_SHA256: HashScheme = { scheme: TPM_ALG.ECDSA, hash: TPM_ALG.SHA256 };

/** The AK of PROTOCOL.md §3. Treat as read-only; spread it to derive variants. */
export const AK_TEMPLATE: TpmPublic = Object.freeze({
  type: 'ecc',
  nameAlg: TPM_ALG.SHA256,
  objectAttributes:
    TPMA_OBJECT.fixedTPM |
    TPMA_OBJECT.fixedParent |
    TPMA_OBJECT.sensitiveDataOrigin |
    TPMA_OBJECT.userWithAuth |
    TPMA_OBJECT.restricted |
    TPMA_OBJECT.sign,
  authPolicy: new Uint8Array(0),
  symmetric: null,
  scheme: ECDSA_SHA256,
  curve: TPM_ECC_CURVE.NIST_P256,
  kdf: null,
  unique: { x: new Uint8Array(0), y: new Uint8Array(0) },
});

function sameScheme(a: HashScheme | SymmetricDef | null, b: HashScheme | SymmetricDef | null): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * True when `key` has `template`'s shape: everything but the unique field (the key itself) matches.
 * Used to refuse a persisted object that merely sits at the expected handle.
 */
export function matchesTemplate(key: TpmPublic, template: TpmPublic): boolean {
  if (key.type !== template.type) return false;
  if (key.nameAlg !== template.nameAlg || key.objectAttributes !== template.objectAttributes) return false;
  if (Buffer.compare(key.authPolicy, template.authPolicy) !== 0) return false;
  if (!sameScheme(key.symmetric, template.symmetric) || !sameScheme(key.scheme, template.scheme))
    return false;
  if (key.type === 'ecc' && template.type === 'ecc')
    return key.curve === template.curve && sameScheme(key.kdf, template.kdf);
  if (key.type === 'rsa' && template.type === 'rsa')
    return key.keyBits === template.keyBits && key.exponent === template.exponent;
  return false;
}
