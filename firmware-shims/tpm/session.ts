import { randomBytes } from 'node:crypto';
import { Reader, Writer } from '../../shared/tpm/bytes.ts';
import { TPM_ALG, TPM_CC, TPM_RH, TPM_SE } from '../../shared/tpm/constants.ts';
import { type Authorization, type CommandRunner, EMPTY_PASSWORD } from './command.ts';
import { withFlushed } from './flush.ts';

export interface AuthSessionStart {
  /** The key the salt is encrypted to, or TPM_RH_NULL for an unsalted session. */
  tpmKey: number;
  type: number;
  nonceCaller: Uint8Array;
  /** TPM2B_ENCRYPTED_SECRET contents; empty for an unsalted session. */
  encryptedSalt?: Uint8Array;
  /** AES-128-CFB parameter encryption; none by default. */
  aes128Cfb?: boolean;
}

/** TPM2_StartAuthSession, unbound, SHA-256: the session's handle and the TPM's first nonce. */
export async function startAuthSession(
  tpm: CommandRunner,
  s: AuthSessionStart,
): Promise<{ handle: number; nonceTPM: Uint8Array }> {
  const w = new Writer()
    .tpm2b(s.nonceCaller)
    .tpm2b(s.encryptedSalt ?? new Uint8Array(0))
    .u8(s.type);
  if (s.aes128Cfb) w.u16(TPM_ALG.AES).u16(128).u16(TPM_ALG.CFB);
  else w.u16(TPM_ALG.NULL);
  const res = await tpm.execute({
    code: TPM_CC.StartAuthSession,
    handles: [s.tpmKey, TPM_RH.NULL],
    parameters: w.u16(TPM_ALG.SHA256).finish(),
    responseHandles: 1,
  });
  const r = new Reader(res.parameters, 'TPM2_StartAuthSession response');
  const nonceTPM = r.tpm2b('nonceTPM');
  r.end();
  return { handle: res.handles[0]!, nonceTPM };
}

/** Starts an unbound, unsalted policy session with SHA-256; returns its handle. */
export async function startPolicySession(tpm: CommandRunner): Promise<number> {
  // nonceCaller: at least 16 bytes, here the SHA-256 size; no salt, no parameter encryption.
  const { handle } = await startAuthSession(tpm, {
    tpmKey: TPM_RH.NULL,
    type: TPM_SE.POLICY,
    nonceCaller: randomBytes(32),
  });
  return handle;
}

/** TPM2_PolicySecret on `authHandle` with its (empty by default) password: satisfies EK PolicyA for TPM_RH_ENDORSEMENT. */
export async function policySecret(
  tpm: CommandRunner,
  session: number,
  authHandle: number,
  auth: Authorization = EMPTY_PASSWORD,
): Promise<void> {
  const parameters = new Writer()
    .tpm2b(new Uint8Array(0)) // nonceTPM: not binding the ticket to this session's nonce
    .tpm2b(new Uint8Array(0)) // cpHashA
    .tpm2b(new Uint8Array(0)) // policyRef
    .u32(0) // expiration: none
    .finish();
  const res = await tpm.execute({
    code: TPM_CC.PolicySecret,
    handles: [authHandle, session],
    auths: [auth],
    parameters,
  });
  // timeout (TPM2B) and ticket (TPMT_TK_AUTH) are of no use without an expiration; just check the shape.
  const r = new Reader(res.parameters, 'TPM2_PolicySecret response');
  r.tpm2b('timeout');
  r.u16('policyTicket.tag');
  r.u32('policyTicket.hierarchy');
  r.tpm2b('policyTicket.digest');
  r.end();
}

/**
 * Runs `use` with a fresh policy session that satisfied the EK's PolicyA, and flushes the session
 * afterwards whatever happened: a TPM has only a few session slots.
 */
export async function withEndorsementPolicy<T>(
  tpm: CommandRunner & { flush(handle: number): Promise<void> },
  use: (auth: Authorization) => Promise<T>,
): Promise<T> {
  return withFlushed(tpm, await startPolicySession(tpm), async (session) => {
    await policySecret(tpm, session, TPM_RH.ENDORSEMENT);
    return use({ kind: 'session', handle: session });
  });
}
