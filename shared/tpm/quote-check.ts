import { parseQuoteAttest, type QuoteAttest } from './attest.ts';
import { equalBytes } from './bytes.ts';
import type { HashName } from './constants.ts';
import { TpmFormatError } from './errors.ts';
import { type PcrSelection, samePcrSelection } from './pcr-selection.ts';
import { pcrDigest, selectedValues } from './pcr-values.ts';
import type { TpmPublic } from './public.ts';
import { parseSignature, type TpmSignature, verifySignature } from './signature.ts';

/** Failure codes, named as PROTOCOL.md §5 names them. */
export type QuoteFailure =
  | 'signature-invalid'
  | 'attest-invalid'
  | 'binding-mismatch'
  | 'pcr-selection-mismatch'
  | 'pcr-digest-mismatch';

export type QuoteCheck =
  | { ok: true; attest: QuoteAttest }
  | { ok: false; failure: QuoteFailure; detail: string };

export interface QuoteExpectation {
  qualifyingData: Uint8Array;
  /** When given, the quoted selection must equal it and the digest must match `pcrValues`. */
  selection?: PcrSelection;
  pcrValues?: ReadonlyMap<HashName, ReadonlyMap<number, Uint8Array>>;
}

/**
 * Checks a TPM2_Quote: the signature over the exact attest bytes first (nothing unsigned is
 * parsed into a decision), then the structure, the qualifying data, and optionally the PCRs.
 * Does not decide whether `ak` is trusted; that is the caller's (the AK's enrolment).
 */
export function checkQuote(
  ak: TpmPublic,
  attest: Uint8Array,
  signature: Uint8Array,
  expect: QuoteExpectation,
): QuoteCheck {
  let sig: TpmSignature | undefined;
  try {
    sig = parseSignature(signature);
  } catch (err) {
    if (!(err instanceof TpmFormatError)) throw err;
  }
  if (sig === undefined || !verifySignature(ak, attest, sig))
    return {
      ok: false,
      failure: 'signature-invalid',
      detail: 'the signature does not verify over the attest with this AK',
    };
  let parsed: QuoteAttest;
  try {
    parsed = parseQuoteAttest(attest);
  } catch (err) {
    if (err instanceof TpmFormatError) return { ok: false, failure: 'attest-invalid', detail: err.message };
    throw err;
  }
  if (!equalBytes(parsed.extraData, expect.qualifyingData)) {
    return {
      ok: false,
      failure: 'binding-mismatch',
      detail: 'attest.extraData differs from the expected qualifying data',
    };
  }
  if (expect.selection !== undefined && !samePcrSelection(parsed.pcrSelect, expect.selection)) {
    return {
      ok: false,
      failure: 'pcr-selection-mismatch',
      detail: 'the quoted PCR selection differs from the requested one',
    };
  }
  if (expect.pcrValues !== undefined) {
    const values = selectedValues(parsed.pcrSelect, expect.pcrValues);
    if (values === undefined || !equalBytes(pcrDigest(values, sig.hash), parsed.pcrDigest)) {
      return {
        ok: false,
        failure: 'pcr-digest-mismatch',
        detail: 'the PCR values do not hash to attest.pcrDigest',
      };
    }
  }
  return { ok: true, attest: parsed };
}
