import { Reader, Writer } from '../../shared/tpm/bytes.ts';
import { TPM_ALG, TPM_CC } from '../../shared/tpm/constants.ts';
import { type PcrSelection, writePcrSelection } from '../../shared/tpm/pcr-selection.ts';
import { readSignature } from '../../shared/tpm/signature.ts';
import { type CommandRunner, EMPTY_PASSWORD } from './command.ts';

export interface Quote {
  /** TPMS_ATTEST: the contents of TPM2B_ATTEST, the bytes the signature covers. */
  attest: Uint8Array;
  /** TPMT_SIGNATURE as the TPM marshalled it. */
  signature: Uint8Array;
}

/** TPM2_Quote with the AK's own scheme; `qualifyingData` lands in attest.extraData. */
export async function quote(
  tpm: CommandRunner,
  akHandle: number,
  qualifyingData: Uint8Array,
  selection: PcrSelection,
): Promise<Quote> {
  const w = new Writer().tpm2b(qualifyingData).u16(TPM_ALG.NULL);
  writePcrSelection(w, selection);
  const res = await tpm.execute({
    code: TPM_CC.Quote,
    handles: [akHandle],
    auths: [EMPTY_PASSWORD],
    parameters: w.finish(),
    // The gateway checks the signature; the HMAC lets the agent refuse an altered answer itself.
    session: {},
  });
  const r = new Reader(res.parameters, 'TPM2_Quote response');
  const attest = r.tpm2b('quoted');
  const start = r.offset;
  readSignature(r);
  r.end();
  return { attest, signature: res.parameters.slice(start) };
}
