import { Reader, Writer } from '../../shared/tpm/bytes.ts';
import { TPM_CC, TPM_RH } from '../../shared/tpm/constants.ts';
import { marshalPublic, parsePublic, type TpmPublic } from '../../shared/tpm/public.ts';
import { AK_TEMPLATE, ekTemplate } from '../../shared/tpm/templates.ts';
import { type Authorization, type CommandRunner, EMPTY_PASSWORD } from './command.ts';
import { withEndorsementPolicy } from './session.ts';

type Runner = CommandRunner & { flush(handle: number): Promise<void> };

export interface PublicInfo {
  public: TpmPublic;
  /** TPMT_PUBLIC exactly as the TPM returned it: hash these bytes, never a re-marshalled copy. */
  publicArea: Uint8Array;
  name: Uint8Array;
}

export interface LoadedKey extends PublicInfo {
  handle: number;
}

export interface CreatedKey {
  /** TPM2B_PRIVATE contents: the key wrapped by its parent, loadable only under it. */
  private: Uint8Array;
  publicArea: Uint8Array;
}

// TPM2B_SENSITIVE_CREATE with empty userAuth and data, TPM2B_DATA outsideInfo, empty creationPCR.
function creationParameters(template: TpmPublic): Uint8Array {
  return new Writer()
    .tpm2b(new Writer().tpm2b(new Uint8Array(0)).tpm2b(new Uint8Array(0)).finish())
    .tpm2b(marshalPublic(template))
    .tpm2b(new Uint8Array(0))
    .u32(0)
    .finish();
}

function skipCreationOutputs(r: Reader): void {
  r.tpm2b('creationData');
  r.tpm2b('creationHash');
  r.u16('creationTicket.tag');
  r.u32('creationTicket.hierarchy');
  r.tpm2b('creationTicket.digest');
}

/** CreatePrimary in a hierarchy from a template; the caller must flush the handle. */
export async function createPrimary(
  tpm: CommandRunner,
  hierarchy: number,
  template: TpmPublic,
): Promise<LoadedKey> {
  const res = await tpm.execute({
    code: TPM_CC.CreatePrimary,
    handles: [hierarchy],
    auths: [EMPTY_PASSWORD],
    parameters: creationParameters(template),
    responseHandles: 1,
  });
  const r = new Reader(res.parameters, 'TPM2_CreatePrimary response');
  const publicArea = r.tpm2b('outPublic');
  skipCreationOutputs(r);
  const name = r.tpm2b('name');
  r.end();
  return { handle: res.handles[0]!, public: parsePublic(publicArea), publicArea, name };
}

/** The EK from the TCG default template; deterministic, so recreating it yields the same key. */
export function createPrimaryEk(tpm: CommandRunner, kind: 'ecc' | 'rsa'): Promise<LoadedKey> {
  return createPrimary(tpm, TPM_RH.ENDORSEMENT, ekTemplate(kind));
}

async function createUnder(
  tpm: CommandRunner,
  parent: number,
  auth: Authorization,
  template: TpmPublic,
): Promise<CreatedKey> {
  const res = await tpm.execute({
    code: TPM_CC.Create,
    handles: [parent],
    auths: [auth],
    parameters: creationParameters(template),
  });
  const r = new Reader(res.parameters, 'TPM2_Create response');
  const priv = r.tpm2b('outPrivate');
  const publicArea = r.tpm2b('outPublic');
  skipCreationOutputs(r);
  r.end();
  return { private: priv, publicArea };
}

/** Creates (but does not load) an AK of PROTOCOL.md §3 under the EK. */
export function createAk(
  tpm: Runner,
  ekHandle: number,
  template: TpmPublic = AK_TEMPLATE,
): Promise<CreatedKey> {
  return withEndorsementPolicy(tpm, (auth) => createUnder(tpm, ekHandle, auth, template));
}

/** Loads a key created under the EK; the caller must flush the returned handle. */
export function loadUnderEk(
  tpm: Runner,
  ekHandle: number,
  priv: Uint8Array,
  publicArea: Uint8Array,
): Promise<number> {
  return withEndorsementPolicy(tpm, async (auth) => {
    const res = await tpm.execute({
      code: TPM_CC.Load,
      handles: [ekHandle],
      auths: [auth],
      parameters: new Writer().tpm2b(priv).tpm2b(publicArea).finish(),
      responseHandles: 1,
    });
    const r = new Reader(res.parameters, 'TPM2_Load response');
    r.tpm2b('name');
    r.end();
    return res.handles[0]!;
  });
}

export interface ReadPublicResult extends PublicInfo {
  qualifiedName: Uint8Array;
}

export function parseReadPublic(parameters: Uint8Array): ReadPublicResult {
  const r = new Reader(parameters, 'TPM2_ReadPublic response');
  const publicArea = r.tpm2b('outPublic');
  const name = r.tpm2b('name');
  const qualifiedName = r.tpm2b('qualifiedName');
  r.end();
  return { public: parsePublic(publicArea), publicArea, name, qualifiedName };
}

export async function readPublic(tpm: CommandRunner, handle: number): Promise<ReadPublicResult> {
  const res = await tpm.execute({ code: TPM_CC.ReadPublic, handles: [handle] });
  return parseReadPublic(res.parameters);
}

/**
 * Persists a loaded object at `persistentHandle`, or, when `handle` is itself persistent and equal
 * to it, removes it. Owner authorisation (empty password).
 */
export async function evictControl(
  tpm: CommandRunner,
  handle: number,
  persistentHandle: number,
): Promise<void> {
  await tpm.execute({
    code: TPM_CC.EvictControl,
    handles: [TPM_RH.OWNER, handle],
    auths: [EMPTY_PASSWORD],
    parameters: new Writer().u32(persistentHandle).finish(),
  });
}
