import { bindingDigest } from './binding.ts';
import { encodeClaims } from './claims.ts';
import type { Challenge, Claims, Evidence, Hello } from './messages.ts';

// An Attester (RFC 9334): what says `hello` and answers challenges. The agent on a TPM, the
// simulator of the bench, and a lead attester carrying its microcontrollers' evidence are all
// this shape, and all go through the one sequence below: claims → body → binding → quote.

/** B of the connection the challenge came on, for the challenge's nonce (PROTOCOL.md §4). */
export type Exporter = (nonce: Uint8Array) => Uint8Array;

export interface Attester {
  hello(): Hello;
  /** Evidence for `challenge`, bound to the connection `exporter` belongs to. */
  answer(challenge: Challenge, exporter: Exporter): Promise<Evidence>;
}

/** The body and the qualifying data a quote must carry for it (PROTOCOL.md §4). */
export function bind(
  claims: Claims,
  exporterValue: Uint8Array,
): { body: Uint8Array; qualifyingData: Uint8Array } {
  const body = encodeClaims(claims);
  return { body, qualifyingData: bindingDigest(exporterValue, body) };
}

/** The evidence message for a challenge, from the bound body and the quote over it. */
export function evidenceOf(
  challenge: Challenge,
  body: Uint8Array,
  quote: { readonly attest: Uint8Array; readonly signature: Uint8Array },
): Evidence {
  return { t: 'evidence', round: challenge.round, body, attest: quote.attest, sig: quote.signature };
}
