import { type Reader, Writer } from './bytes.ts';
import { HASH_ALG, type HashName, hashName } from './constants.ts';
import { TpmFormatError } from './errors.ts';

/** TPML_PCR_SELECTION: per bank, the PCR indices selected, ascending. */
export type PcrSelection = { hash: HashName; pcrs: number[] }[];

const S = 'TPML_PCR_SELECTION';
// Part 2: HASH_COUNT bounds the list; 32 select bytes (256 PCRs) is beyond any real TPM.
const MAX_BANKS = 16;
const MAX_SELECT_BYTES = 32;

export function writePcrSelection(w: Writer, selection: PcrSelection): void {
  w.u32(selection.length);
  for (const { hash, pcrs } of selection) {
    const max = pcrs.reduce((m, p) => Math.max(m, p), -1);
    // At least 3 bytes: TPMs reject a sizeofSelect below PCR_SELECT_MIN (24 PCRs).
    const select = new Uint8Array(Math.max(3, Math.ceil((max + 1) / 8)));
    for (const pcr of pcrs) {
      if (!Number.isInteger(pcr) || pcr < 0 || pcr >= MAX_SELECT_BYTES * 8) {
        throw new RangeError(`PCR index ${pcr} out of range 0..${MAX_SELECT_BYTES * 8 - 1}`);
      }
      select[pcr >> 3]! |= 1 << (pcr & 7);
    }
    w.u16(HASH_ALG[hash]).u8(select.length).bytes(select);
  }
}

export function marshalPcrSelection(selection: PcrSelection): Uint8Array {
  const w = new Writer();
  writePcrSelection(w, selection);
  return w.finish();
}

/** A bank as the TPM reported it, including banks whose hash Vigil does not know. */
export interface RawPcrBank {
  alg: number;
  pcrs: number[];
}

export function readRawPcrSelection(r: Reader): RawPcrBank[] {
  const count = r.u32(`${S}.count`);
  if (count > MAX_BANKS)
    throw new TpmFormatError(S, 'count', `${count} banks, more than the maximum ${MAX_BANKS}`);
  const banks: RawPcrBank[] = [];
  for (let i = 0; i < count; i++) {
    const alg = r.u16(`${S}.pcrSelections[${i}].hash`);
    const size = r.u8(`${S}.pcrSelections[${i}].sizeofSelect`);
    if (size > MAX_SELECT_BYTES) {
      throw new TpmFormatError(S, `pcrSelections[${i}].sizeofSelect`, `${size} exceeds ${MAX_SELECT_BYTES}`);
    }
    const select = r.bytes(size, `${S}.pcrSelections[${i}].pcrSelect`);
    const pcrs: number[] = [];
    for (let byte = 0; byte < size; byte++) {
      for (let bit = 0; bit < 8; bit++) if ((select[byte]! >> bit) & 1) pcrs.push(byte * 8 + bit);
    }
    banks.push({ alg, pcrs });
  }
  return banks;
}

/** Reads a TPML_PCR_SELECTION at the reader's position; banks of unknown hash are an error. */
export function parsePcrSelection(r: Reader): PcrSelection {
  return readRawPcrSelection(r).map(({ alg, pcrs }, i) => {
    const hash = hashName(alg);
    if (hash === undefined) {
      throw new TpmFormatError(S, `pcrSelections[${i}].hash`, `unsupported bank 0x${alg.toString(16)}`);
    }
    return { hash, pcrs };
  });
}

/** Same banks, same PCRs, same order. */
export function samePcrSelection(a: PcrSelection, b: PcrSelection): boolean {
  return (
    a.length === b.length &&
    a.every((bank, i) => {
      const other = b[i]!;
      return (
        bank.hash === other.hash &&
        bank.pcrs.length === other.pcrs.length &&
        bank.pcrs.every((p, j) => p === other.pcrs[j])
      );
    })
  );
}
