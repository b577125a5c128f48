import { hex } from '../../shared/tpm/constants.ts';
import { rcBase, rcName } from '../../shared/tpm/rc.ts';

/** The TPM refused a command: carries the response code, its name, and the command that failed. */
export class TpmError extends Error {
  override readonly name = 'TpmError';
  readonly rc: number;
  readonly rcName: string;
  readonly command: string;

  constructor(command: string, rc: number, hint?: string) {
    const name = rcName(rc);
    super(`${command} failed: ${name}${hint ? `; ${hint}` : ''}`);
    this.rc = rc;
    this.rcName = name;
    this.command = command;
  }

  /** Compares ignoring which handle/parameter/session a format-one code points at. */
  is(rc: number): boolean {
    return rcBase(this.rc) === rcBase(rc);
  }
}

const HINTS: Readonly<Record<number, string>> = {
  2306: 'the TPM is out of object slots; flush transient objects (tpm2_flushcontext -t) or use /dev/tpmrm0',
  2307: 'the TPM is out of session slots; flush sessions (tpm2_flushcontext -s)',
  2337: 'the TPM is in dictionary-attack lockout; wait, or clear it with the lockout authorization',
  256: 'the TPM has not been started; send TPM2_Startup (or start swtpm with --flags startup-clear)',
  2446: 'authorization failed; check the hierarchy or object password',
  2466: 'authorization failed; check the hierarchy or object password',
};

export function hintFor(rc: number): string | undefined {
  return HINTS[rcBase(rc)] ?? HINTS[rc & 0xfff];
}

export function commandName(code: number): string {
  return COMMAND_NAMES[code] ?? `TPM2_CC ${hex(code)}`;
}

const COMMAND_NAMES: Readonly<Record<number, string>> = {
  288: 'TPM2_EvictControl',
  298: 'TPM2_NV_DefineSpace',
  305: 'TPM2_CreatePrimary',
  311: 'TPM2_NV_Write',
  324: 'TPM2_Startup',
  325: 'TPM2_Shutdown',
  327: 'TPM2_ActivateCredential',
  334: 'TPM2_NV_Read',
  337: 'TPM2_PolicySecret',
  339: 'TPM2_Create',
  343: 'TPM2_Load',
  344: 'TPM2_Quote',
  357: 'TPM2_FlushContext',
  361: 'TPM2_NV_ReadPublic',
  371: 'TPM2_ReadPublic',
  374: 'TPM2_StartAuthSession',
  378: 'TPM2_GetCapability',
  379: 'TPM2_GetRandom',
  382: 'TPM2_PCR_Read',
  386: 'TPM2_PCR_Extend',
};

/**
 * Why a command's answer cannot be trusted although the TPM (or what claims to be it) said
 * success: the bus between the agent and the TPM altered it, or the key to salt a session to is
 * not the pinned EK. Stable codes for logs and callers.
 */
export type TpmBusFailure = 'response-hmac-invalid' | 'ek-mismatch';

export class TpmBusError extends Error {
  override readonly name = 'TpmBusError';
  readonly code: TpmBusFailure;
  /** The command and TPM, e.g. `TPM2_Quote on swtpm at 127.0.0.1:2321`. */
  readonly command: string;

  constructor(code: TpmBusFailure, command: string, detail: string) {
    super(`${command}: ${detail}`);
    this.code = code;
    this.command = command;
  }
}
