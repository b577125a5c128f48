import { Reader, Writer } from '../../shared/tpm/bytes.ts';
import { TPM_RH, TPM_ST, TPMA_SESSION } from '../../shared/tpm/constants.ts';
import { TpmFormatError } from '../../shared/tpm/errors.ts';

/**
 * How one handle of a command is authorised, or what an extra session does: a password (empty by
 * default), a started policy session that needs no HMAC, or a session whose TPMS_AUTH_COMMAND the
 * caller computed (an HMAC session: see salted-session.ts).
 */
export type Authorization =
  | { kind: 'password'; value?: Uint8Array }
  | { kind: 'session'; handle: number }
  | { kind: 'hmac'; handle: number; nonce: Uint8Array; attributes: number; hmac: Uint8Array };

export const EMPTY_PASSWORD: Authorization = { kind: 'password' };

export interface Command {
  code: number;
  /** The handle area, in the order Part 3 lists the command's handles. */
  handles?: number[];
  /**
   * One per handle that needs authorisation, in handle order, then any session that only audits
   * or encrypts; empty for commands without sessions.
   */
  auths?: Authorization[];
  parameters?: Uint8Array;
  /** How many handles the response's handle area carries (Part 3 lists them per command). */
  responseHandles?: number;
  /**
   * Run in the runner's bus session when it keeps one (a Tpm with a pinned EK): the HMAC session
   * takes the place of the first authorisation (an empty password, or one whose value it then
   * uses), or, for a command without authorisations, joins as an audit session, so that the
   * response is HMAC-checked either way. `decrypt`/`encrypt` ask for the first command/response
   * parameter (a TPM2B) to travel AES-CFB encrypted. Without a bus session the command runs as written.
   */
  session?: SessionUse;
}

export interface SessionUse {
  decrypt?: boolean;
  encrypt?: boolean;
}

/** TPMS_AUTH_RESPONSE: what the TPM says back for each session of a command. */
export interface SessionResponse {
  nonce: Uint8Array;
  attributes: number;
  hmac: Uint8Array;
}

export interface Response {
  rc: number;
  handles: number[];
  /** The response parameter area, without the sessions. */
  parameters: Uint8Array;
  /** One per session of the command, in order; empty for errors and commands without sessions. */
  sessions: SessionResponse[];
}

function writeAuth(w: Writer, auth: Authorization): void {
  if (auth.kind === 'password') {
    w.u32(TPM_RH.PW)
      .tpm2b(new Uint8Array(0))
      .u8(TPMA_SESSION.continueSession)
      .tpm2b(auth.value ?? new Uint8Array(0));
  } else if (auth.kind === 'session') {
    // An unbound, unsalted policy session has no session key, so its HMAC is empty (Part 1 §19.6.13).
    w.u32(auth.handle).tpm2b(new Uint8Array(0)).u8(TPMA_SESSION.continueSession).tpm2b(new Uint8Array(0));
  } else {
    w.u32(auth.handle).tpm2b(auth.nonce).u8(auth.attributes).tpm2b(auth.hmac);
  }
}

export function marshalCommand(cmd: Command): Uint8Array {
  const auths = cmd.auths ?? [];
  const body = new Writer();
  for (const h of cmd.handles ?? []) body.u32(h);
  if (auths.length > 0) {
    const area = new Writer();
    for (const a of auths) writeAuth(area, a);
    body.u32(area.length).bytes(area.finish());
  }
  if (cmd.parameters) body.bytes(cmd.parameters);
  const tag = auths.length > 0 ? TPM_ST.SESSIONS : TPM_ST.NO_SESSIONS;
  return new Writer()
    .u16(tag)
    .u32(10 + body.length)
    .u32(cmd.code)
    .bytes(body.finish())
    .finish();
}

const S = 'TPM response';

/**
 * Splits a response into code, handles and parameters, checking the header against the bytes
 * actually received. Only TpmFormatError escapes, whatever the bytes.
 */
export function parseResponse(bytes: Uint8Array, expect: { handles: number; sessions: number }): Response {
  const r = new Reader(bytes, S);
  const tag = r.u16('tag');
  const size = r.u32('responseSize');
  if (size !== bytes.length)
    throw new TpmFormatError(S, 'responseSize', `header says ${size} bytes, received ${bytes.length}`);
  const rc = r.u32('responseCode');
  if (rc !== 0) {
    r.end();
    return { rc, handles: [], parameters: new Uint8Array(0), sessions: [] };
  }
  const handles: number[] = [];
  for (let i = 0; i < expect.handles; i++) handles.push(r.u32(`handle[${i}]`));
  if (tag === TPM_ST.NO_SESSIONS) {
    if (expect.sessions > 0)
      throw new TpmFormatError(
        S,
        'tag',
        `TPM_ST_NO_SESSIONS, but the command carried ${expect.sessions} sessions`,
      );
    return { rc, handles, parameters: r.bytes(r.remaining, 'parameters'), sessions: [] };
  }
  if (tag !== TPM_ST.SESSIONS)
    throw new TpmFormatError(S, 'tag', `expected 0x8001 or 0x8002, got 0x${tag.toString(16)}`);
  if (expect.sessions === 0)
    throw new TpmFormatError(S, 'tag', 'TPM_ST_SESSIONS, but the command carried no sessions');
  const parameterSize = r.u32('parameterSize');
  const parameters = r.bytes(parameterSize, 'parameters');
  const sessions: SessionResponse[] = [];
  for (let i = 0; i < expect.sessions; i++) {
    sessions.push({
      nonce: r.tpm2b(`session[${i}].nonce`),
      attributes: r.u8(`session[${i}].attributes`),
      hmac: r.tpm2b(`session[${i}].hmac`),
    });
  }
  r.end();
  return { rc, handles, parameters, sessions };
}

/** What the command modules need from the Tpm facade: run a command, with retries, and get its response. */
export interface CommandRunner {
  /** Throws TpmError unless the TPM answered TPM_RC_SUCCESS. */
  execute(cmd: Command): Promise<Response>;
  /** Returns the response whatever its code, for callers that expect some failures (e.g. absent handles). */
  attempt(cmd: Command): Promise<Response>;
}
