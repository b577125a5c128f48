import { equalBytes } from '../../shared/tpm/bytes.ts';
import { TPM_ECC_CURVE, TPM_RH } from '../../shared/tpm/constants.ts';
import { hierarchyName, objectName, qualifiedName } from '../../shared/tpm/name.ts';
import type { TpmPublic } from '../../shared/tpm/public.ts';
import { TPM_RC } from '../../shared/tpm/rc.ts';
import { AK_TEMPLATE, matchesTemplate } from '../../shared/tpm/templates.ts';
import { withFlushed } from './flush.ts';
import type { ReadPublicResult } from './keys.ts';
import type { Tpm } from './tpm.ts';
import { TpmError } from './tpm-error.ts';

export const DEFAULT_AK_HANDLE = 0x81000a01;

export interface ProvisionOptions {
  ek: 'ecc' | 'rsa' | 'auto';
  akHandle?: number;
}

export interface AttestationKeys {
  ek: {
    kind: 'ecc' | 'rsa';
    public: TpmPublic;
    publicArea: Uint8Array;
    name: Uint8Array;
    certificate?: Uint8Array;
  };
  ak: { handle: number; public: TpmPublic; publicArea: Uint8Array; name: Uint8Array };
}

/** ECC P-256 when the TPM implements it (smaller, faster), else RSA-2048. */
export async function chooseEkKind(tpm: Tpm): Promise<'ecc' | 'rsa'> {
  try {
    return (await tpm.eccCurves()).includes(TPM_ECC_CURVE.NIST_P256) ? 'ecc' : 'rsa';
  } catch {
    return 'rsa';
  }
}

async function persistedAk(tpm: Tpm, handle: number): Promise<ReadPublicResult | undefined> {
  try {
    return await tpm.readPublic(handle);
  } catch (err) {
    if (err instanceof TpmError && err.is(TPM_RC.HANDLE)) return undefined;
    throw err;
  }
}

/**
 * Makes sure the TPM holds the keys PROTOCOL.md §3 describes, and returns their public parts.
 * The EK is recreated from its template (it is deterministic) and flushed before returning, since
 * an SLB 9670 has only three transient slots. The AK is reused when the object persisted at
 * `akHandle` has the AK template's shape and is a child of this EK; otherwise whatever is there is
 * evicted and a new AK is created, persisted and read back. Safe to run on every start.
 */
export async function provisionAttestationKeys(
  tpm: Tpm,
  options: ProvisionOptions,
): Promise<AttestationKeys> {
  const akHandle = options.akHandle ?? DEFAULT_AK_HANDLE;
  const kind = options.ek === 'auto' ? await chooseEkKind(tpm) : options.ek;
  const ek = await tpm.createPrimaryEk(kind);
  // The EK read here is the one whose hash becomes the device id: the bus session is salted to it.
  tpm.pinEk({ kind, name: objectName(ek.publicArea) });
  return withFlushed(tpm, ek.handle, async () => {
    const certificate = await tpm.readEkCertificate(kind);
    const ekQualifiedName = qualifiedName(hierarchyName(TPM_RH.ENDORSEMENT), ek.name);
    let ak = await persistedAk(tpm, akHandle);
    const usable =
      ak !== undefined &&
      matchesTemplate(ak.public, AK_TEMPLATE) &&
      equalBytes(ak.qualifiedName, qualifiedName(ekQualifiedName, ak.name));
    if (ak !== undefined && !usable) await tpm.evictControl(akHandle, akHandle);
    if (ak === undefined || !usable) {
      const created = await tpm.createAk(ek.handle);
      const loaded = await tpm.load(ek.handle, created.private, created.publicArea);
      await withFlushed(tpm, loaded, (h) => tpm.evictControl(h, akHandle));
      ak = await tpm.readPublic(akHandle);
    }
    return {
      ek: {
        kind,
        public: ek.public,
        publicArea: ek.publicArea,
        name: ek.name,
        ...(certificate ? { certificate } : {}),
      },
      ak: { handle: akHandle, public: ak.public, publicArea: ak.publicArea, name: ak.name },
    };
  });
}
