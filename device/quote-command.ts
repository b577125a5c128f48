import { mkdirSync } from 'node:fs';
import { writeCheckquoteFiles } from '../firmware-shims/tpm/checkquote-files.ts';
import type { AgentConfig } from './config.ts';
import { TpmAccess } from './tpm-access.ts';

// `vigil-agent quote`: a quote made by hand, for an operator who wants to check a device with
// tpm2-tools and nothing of ours: the files are those `tpm2_checkquote` reads. The nonce is the
// qualifying data as given (no TLS binding: there is no connection to bind to). Loaded only by this
// command, so `run` never carries the file writer.

/** TPM2B_DATA holds at most one digest; 32 bytes is what every TPM with a SHA-256 bank accepts. */
export const MAX_NONCE_BYTES = 32;

export function parseNonce(hex: string): Uint8Array {
  if (!/^([0-9a-fA-F]{2}){1,32}$/.test(hex)) {
    throw new RangeError(
      `--nonce ${JSON.stringify(hex)}: expected 1 to ${MAX_NONCE_BYTES} bytes as an even number of hex digits, e.g. $(openssl rand -hex 32)`,
    );
  }
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

export interface QuoteFilesResult {
  /** `tpm2_checkquote` arguments that verify the files written. */
  readonly checkquoteArgs: string[];
  readonly pcrs: readonly number[];
}

export async function writeQuoteFiles(
  config: AgentConfig,
  nonce: Uint8Array,
  outDir: string,
  pcrs: readonly number[] = [config.swPcr],
): Promise<QuoteFilesResult> {
  const selection = [{ hash: 'sha256' as const, pcrs: [...pcrs].sort((a, b) => a - b) }];
  mkdirSync(outDir, { recursive: true });
  const tpm = new TpmAccess(config.tpm);
  try {
    const { akPublic, quote, values } = await tpm.run(async (t) => {
      const ak = await t.readPublic(config.akHandle);
      const quote = await t.quote(config.akHandle, nonce, selection);
      // Read after the quote: tpm2_checkquote recomputes the digest from these values, so a PCR
      // that moved in between shows up as a failed check instead of passing unnoticed.
      const values = await t.pcrRead(selection[0]!.pcrs);
      return { akPublic: ak.public, quote, values };
    });
    const checkquoteArgs = await writeCheckquoteFiles(outDir, {
      akPublic,
      attest: quote.attest,
      signature: quote.signature,
      selection,
      values: new Map([['sha256', values]]),
      qualifyingData: nonce,
    });
    return { checkquoteArgs, pcrs: selection[0]!.pcrs };
  } finally {
    await tpm.close();
  }
}
