import { parseQuoteAttest, type QuoteAttest } from './attest.ts';
import { equalBytes } from './bytes.ts';
import type { HashName } from './constants.ts';
import { TpmFormatError } from './errors.ts';
import { type PcrSelection, samePcrSelection } from './pcr-selection.ts';
import { pcrDigest, selectedValues } from './pcr-values.ts';
import type { TpmPublic } from './public.ts';
import {
  parseSignature,
  runSignatureCheck,
  type SignatureCheck,
  signatureCheck,
  type TpmSignature,
} from './signature.ts';

// Checking a TPM2_Quote, step by step. The gateway's appraisal calls the steps in the order of
// PROTOCOL.md §5 (with its own checks between them); `checkQuote` composes the same steps for
// everyone else. Either way it is this code, tested against tpm2-tools and fuzzed, that decides.

/** Failure codes, named as PROTOCOL.md §5 names them. */
export type QuoteFailure =
  | 'signature-invalid'
  | 'attest-invalid'
  | 'binding-mismatch'
  | 'pcr-selection-mismatch'
  | 'pcr-digest-mismatch';

export type QuoteStep<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly failure: QuoteFailure; readonly detail: string };

const fail = (failure: QuoteFailure, detail: string): QuoteStep<never> => ({ ok: false, failure, detail });
const ok = <T>(value: T): QuoteStep<T> => ({ ok: true, value });

export const SIGNATURE_MISMATCH = 'sig does not verify over attest with the AK';

/**
 * The check of `sig` over the exact attest bytes with the AK, everything decided but the
 * arithmetic: a verifier may run it in a worker (runSignatureCheck) and settle the step then.
 */
export function quoteSignatureCheck(
  ak: TpmPublic,
  attest: Uint8Array,
  signature: Uint8Array,
): QuoteStep<{ readonly sig: TpmSignature; readonly check: SignatureCheck }> {
  let sig: TpmSignature;
  try {
    sig = parseSignature(signature);
  } catch (err) {
    if (!(err instanceof TpmFormatError)) throw err;
    return fail('signature-invalid', `sig is not a TPMT_SIGNATURE: ${err.message}`);
  }
  let check: SignatureCheck | undefined;
  try {
    check = signatureCheck(ak, attest, sig);
  } catch {
    check = undefined;
  }
  return check ? ok({ sig, check }) : fail('signature-invalid', SIGNATURE_MISMATCH);
}

/** The signature over the exact attest bytes: nothing unsigned is parsed into a decision. */
export function verifyQuoteSignature(
  ak: TpmPublic,
  attest: Uint8Array,
  signature: Uint8Array,
): QuoteStep<TpmSignature> {
  const step = quoteSignatureCheck(ak, attest, signature);
  if (!step.ok) return step;
  return runSignatureCheck(step.value.check)
    ? ok(step.value.sig)
    : fail('signature-invalid', SIGNATURE_MISMATCH);
}

/** TPMS_ATTEST of a quote: magic, type, no trailing bytes. */
export function parseQuote(attest: Uint8Array): QuoteStep<QuoteAttest> {
  try {
    return ok(parseQuoteAttest(attest));
  } catch (err) {
    if (err instanceof TpmFormatError) return fail('attest-invalid', err.message);
    throw err;
  }
}

/** attest.extraData against what the verifier expects, compared in constant time. */
export function checkQualifyingData(attest: QuoteAttest, expected: Uint8Array): QuoteStep<void> {
  return equalBytes(attest.extraData, expected)
    ? ok(undefined)
    : fail('binding-mismatch', 'attest.extraData differs from the expected qualifying data');
}

/** Banks that select no PCR say nothing; a TPM may list them. */
const withPcrs = (s: PcrSelection): PcrSelection => s.filter((bank) => bank.pcrs.length > 0);

const describeSelection = (s: PcrSelection) =>
  s.map((b) => `${b.hash}:${b.pcrs.join(',')}`).join(' ') || 'nothing';

/** The quoted selection is the one asked for (same banks, PCRs and order). */
export function checkPcrSelection(attest: QuoteAttest, asked: PcrSelection): QuoteStep<void> {
  return samePcrSelection(withPcrs(attest.pcrSelect), withPcrs(asked))
    ? ok(undefined)
    : fail(
        'pcr-selection-mismatch',
        `quoted ${describeSelection(attest.pcrSelect)}, asked ${describeSelection(asked)}`,
      );
}

/**
 * The PCR values claimed, in selection order, hash to attest.pcrDigest under the signature's
 * hash (TPM 2.0 Part 3 §18.4: the digest uses the signing scheme's hash, whatever the banks').
 */
export function checkPcrDigest(
  attest: QuoteAttest,
  values: readonly Uint8Array[],
  hash: HashName,
): QuoteStep<void> {
  return equalBytes(pcrDigest(values, hash), attest.pcrDigest)
    ? ok(undefined)
    : fail('pcr-digest-mismatch', 'the PCR values do not hash to attest.pcrDigest');
}

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
 * Checks a TPM2_Quote: signature, structure, qualifying data, and optionally the PCRs. Does not
 * decide whether `ak` is trusted; that is the caller's (the AK's enrolment).
 */
export function checkQuote(
  ak: TpmPublic,
  attest: Uint8Array,
  signature: Uint8Array,
  expect: QuoteExpectation,
): QuoteCheck {
  const sig = verifyQuoteSignature(ak, attest, signature);
  if (!sig.ok) return sig;
  const parsed = parseQuote(attest);
  if (!parsed.ok) return parsed;
  const steps = [checkQualifyingData(parsed.value, expect.qualifyingData)];
  if (expect.selection !== undefined) steps.push(checkPcrSelection(parsed.value, expect.selection));
  if (expect.pcrValues !== undefined) {
    const values = selectedValues(parsed.value.pcrSelect, expect.pcrValues);
    steps.push(
      values === undefined
        ? fail('pcr-digest-mismatch', 'no value given for a quoted PCR')
        : checkPcrDigest(parsed.value, values, sig.value.hash),
    );
  }
  for (const s of steps) if (!s.ok) return s;
  return { ok: true, attest: parsed.value };
}
