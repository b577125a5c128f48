import { Reader } from './bytes.ts';
import { TPM_GENERATED_VALUE, TPM_ST } from './constants.ts';
import { TpmFormatError } from './errors.ts';
import { type PcrSelection, parsePcrSelection } from './pcr-selection.ts';

export interface ClockInfo {
  clock: bigint;
  resetCount: number;
  restartCount: number;
  safe: boolean;
}

/** TPMS_ATTEST whose attested union is TPMS_QUOTE_INFO. */
export interface QuoteAttest {
  magic: number;
  type: number;
  qualifiedSigner: Uint8Array;
  extraData: Uint8Array;
  clock: ClockInfo;
  firmwareVersion: bigint;
  pcrSelect: PcrSelection;
  pcrDigest: Uint8Array;
}

const S = 'TPMS_ATTEST';

/**
 * Parses the TPMS_ATTEST a TPM2_Quote signed (the contents of TPM2B_ATTEST). Refuses anything but
 * a TPM-generated quote: the magic guards against signing a caller-chosen message that merely looks
 * like an attestation, and the type pins the union.
 */
export function parseQuoteAttest(bytes: Uint8Array): QuoteAttest {
  const r = new Reader(bytes, S);
  const magic = r.u32('magic');
  if (magic !== TPM_GENERATED_VALUE) {
    throw new TpmFormatError(
      S,
      'magic',
      `expected 0xff544347 (TPM_GENERATED_VALUE), got 0x${magic.toString(16)}`,
      'magic',
    );
  }
  const type = r.u16('type');
  if (type !== TPM_ST.ATTEST_QUOTE) {
    throw new TpmFormatError(
      S,
      'type',
      `expected 0x8018 (TPM_ST_ATTEST_QUOTE), got 0x${type.toString(16)}`,
      'type',
    );
  }
  const qualifiedSigner = r.tpm2b('qualifiedSigner', 2 + 64);
  const extraData = r.tpm2b('extraData', 64);
  const clock = r.u64('clockInfo.clock');
  const resetCount = r.u32('clockInfo.resetCount');
  const restartCount = r.u32('clockInfo.restartCount');
  const safe = r.u8('clockInfo.safe');
  if (safe > 1) throw new TpmFormatError(S, 'clockInfo.safe', `expected 0 or 1, got ${safe}`);
  const firmwareVersion = r.u64('firmwareVersion');
  const pcrSelect = parsePcrSelection(r);
  const pcrDigest = r.tpm2b('pcrDigest', 64);
  r.end();
  return {
    magic,
    type,
    qualifiedSigner,
    extraData,
    clock: { clock, resetCount, restartCount, safe: safe === 1 },
    firmwareVersion,
    pcrSelect,
    pcrDigest,
  };
}
