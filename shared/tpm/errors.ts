/**
 * Why a structure was refused. `structure` covers every malformation that is not one of the
 * specific checks a verifier maps to its own result code (see PROTOCOL.md §5, attest-invalid).
 */
export type TpmFormatReason = 'magic' | 'type' | 'structure' | 'trailing';

/** The only error the parsers in shared/tpm throw on bad input. */
export class TpmFormatError extends Error {
  override readonly name = 'TpmFormatError';
  readonly structure: string;
  readonly field: string;
  readonly reason: TpmFormatReason;

  constructor(structure: string, field: string, message: string, reason: TpmFormatReason = 'structure') {
    super(`${structure}.${field}: ${message}`);
    this.structure = structure;
    this.field = field;
    this.reason = reason;
  }
}
