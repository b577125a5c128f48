import { Reader, Writer } from '../../shared/tpm/bytes.ts';
import { EK_CERT_INDEX, TPM_CC, TPM_PT, TPM_RH, TPMA_NV } from '../../shared/tpm/constants.ts';
import { TPM_RC } from '../../shared/tpm/rc.ts';
import { property } from './capability.ts';
import { type CommandRunner, EMPTY_PASSWORD } from './command.ts';
import { TpmError } from './tpm-error.ts';

export interface NvPublic {
  index: number;
  nameAlg: number;
  attributes: number;
  authPolicy: Uint8Array;
  dataSize: number;
  name: Uint8Array;
}

export async function nvReadPublic(tpm: CommandRunner, index: number): Promise<NvPublic> {
  const res = await tpm.execute({ code: TPM_CC.NV_ReadPublic, handles: [index] });
  return parseNvReadPublic(res.parameters);
}

function parseNvReadPublic(parameters: Uint8Array): NvPublic {
  const r = new Reader(parameters, 'TPM2_NV_ReadPublic response');
  const pub = r.sized('nvPublic', (p) => ({
    index: p.u32('nvIndex'),
    nameAlg: p.u16('nameAlg'),
    attributes: p.u32('attributes'),
    authPolicy: p.tpm2b('authPolicy'),
    dataSize: p.u16('dataSize'),
  }));
  const name = r.tpm2b('nvName');
  r.end();
  return { ...pub, name };
}

// Prefer the index's own (empty) auth, as EK certificate indices allow it; else the owner's.
function readAuthHandle(pub: NvPublic): number {
  if (pub.attributes & TPMA_NV.AUTHREAD) return pub.index;
  if (pub.attributes & TPMA_NV.OWNERREAD) return TPM_RH.OWNER;
  if (pub.attributes & TPMA_NV.PPREAD) return TPM_RH.PLATFORM;
  throw new Error(
    `NV index 0x${pub.index.toString(16)} is readable only with a policy, which Vigil does not support`,
  );
}

/** The whole contents of an NV index, read in chunks of TPM_PT_NV_BUFFER_MAX. */
export async function nvRead(tpm: CommandRunner, index: number): Promise<Uint8Array> {
  const pub = await nvReadPublic(tpm, index);
  const chunk = (await property(tpm, TPM_PT.NV_BUFFER_MAX)) ?? 512;
  const authHandle = readAuthHandle(pub);
  const out = new Writer();
  for (let offset = 0; offset < pub.dataSize; ) {
    const size = Math.min(chunk, pub.dataSize - offset);
    const res = await tpm.execute({
      code: TPM_CC.NV_Read,
      handles: [authHandle, index],
      auths: [EMPTY_PASSWORD],
      parameters: new Writer().u16(size).u16(offset).finish(),
    });
    const r = new Reader(res.parameters, 'TPM2_NV_Read response');
    const data = r.tpm2b('data');
    r.end();
    if (data.length !== size)
      throw new Error(`TPM2_NV_Read at offset ${offset}: asked for ${size} bytes, got ${data.length}`);
    out.bytes(data);
    offset += size;
  }
  return out.finish();
}

/** The EK certificate (DER) the manufacturer stored at the default index, or undefined if there is none. */
export async function readEkCertificate(
  tpm: CommandRunner,
  kind: 'ecc' | 'rsa',
): Promise<Uint8Array | undefined> {
  const index = EK_CERT_INDEX[kind];
  const probe = await tpm.attempt({ code: TPM_CC.NV_ReadPublic, handles: [index] });
  if (probe.rc !== 0) {
    const err = new TpmError('TPM2_NV_ReadPublic', probe.rc);
    if (err.is(TPM_RC.HANDLE)) return undefined;
    throw err;
  }
  const cert = await nvRead(tpm, index);
  // Some manufacturers pad the index with trailing zeros or 0xff; keep only the DER SEQUENCE.
  return trimDer(cert);
}

function trimDer(bytes: Uint8Array): Uint8Array {
  if (bytes.length < 2 || bytes[0] !== 0x30) return bytes;
  const first = bytes[1]!;
  if (first < 0x80) return bytes.slice(0, Math.min(bytes.length, 2 + first));
  const n = first & 0x7f;
  if (n === 0 || n > 4 || bytes.length < 2 + n) return bytes;
  let length = 0;
  for (let i = 0; i < n; i++) length = length * 256 + bytes[2 + i]!;
  return bytes.slice(0, Math.min(bytes.length, 2 + n + length));
}
