import { createHash, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import {
  AK_TEMPLATE,
  type EccPublic,
  marshalPublic,
  marshalSignature,
  parsePublic,
  TPM_GENERATED_VALUE,
  TPM_ST,
  type TpmPublic,
  Writer,
  writePcrSelection,
} from '../../shared/tpm/index.ts';

// A software key with a Vigil AK's public area, and TPMS_ATTEST built field by field. A TPM's
// restricted AK refuses to sign data that does not start with TPM_GENERATED_VALUE, so a quote
// with a wrong magic or type signed by a valid key can only be made in software: this is how the
// tests show that the verifier's structure checks hold even when a signature verifies.

export interface SoftAk {
  readonly privateKey: KeyObject;
  readonly publicArea: Uint8Array;
  readonly public: TpmPublic;
}

export function softAk(): SoftAk {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  const coord = (b64: string | undefined) => new Uint8Array(Buffer.from(b64 ?? '', 'base64url'));
  const pub: EccPublic = { ...(AK_TEMPLATE as EccPublic), unique: { x: coord(jwk.x), y: coord(jwk.y) } };
  const publicArea = marshalPublic(pub);
  return { privateKey, publicArea, public: parsePublic(publicArea) };
}

export interface AttestFields {
  magic?: number;
  type?: number;
  qualifiedSigner: Uint8Array;
  extraData: Uint8Array;
  clock?: bigint;
  resetCount?: number;
  restartCount?: number;
  pcrs: readonly number[];
  pcrValues: readonly Uint8Array[];
  trailing?: Uint8Array;
}

export function buildAttest(f: AttestFields): Uint8Array {
  const digest = createHash('sha256');
  for (const v of f.pcrValues) digest.update(v);
  const w = new Writer()
    .u32(f.magic ?? TPM_GENERATED_VALUE)
    .u16(f.type ?? TPM_ST.ATTEST_QUOTE)
    .tpm2b(f.qualifiedSigner)
    .tpm2b(f.extraData)
    .u64(f.clock ?? 1000n)
    .u32(f.resetCount ?? 0)
    .u32(f.restartCount ?? 0)
    .u8(1)
    .u64(0n);
  writePcrSelection(w, [{ hash: 'sha256', pcrs: [...f.pcrs] }]);
  w.tpm2b(new Uint8Array(digest.digest()));
  if (f.trailing) w.bytes(f.trailing);
  return w.finish();
}

/** TPMT_SIGNATURE (ECDSA, SHA-256) over `attest` with the software AK. */
export function softSign(ak: SoftAk, attest: Uint8Array): Uint8Array {
  const p1363 = sign('sha256', attest, { key: ak.privateKey, dsaEncoding: 'ieee-p1363' });
  return marshalSignature({
    type: 'ecdsa',
    hash: 'sha256',
    r: new Uint8Array(p1363.subarray(0, 32)),
    s: new Uint8Array(p1363.subarray(32, 64)),
  });
}
