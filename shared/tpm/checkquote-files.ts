import { toHex } from './bytes.ts';
import { HASH_ALG, type HashName } from './constants.ts';
import type { PcrSelection } from './pcr-selection.ts';
import { publicKey, type TpmPublic } from './public.ts';

// The files `tpm2_checkquote` reads, as bytes: the agent's `quote` command writes them for an
// operator, the gateway's audit export for a third party. Pure: the callers write the files.
//
// tpm2-tools writes the PCR file (`tpm2_quote -o`) by dumping its C structures in host byte order:
//   TPML_PCR_SELECTION: u32 count, then 16 slots of { u16 hash, u8 sizeofSelect, u8 select[4], pad }
//   u32 number of TPML_DIGEST groups, then per group: u32 count, 8 slots of { u16 size, u8 buffer[64] }
// tpm2_checkquote reads it back the same way. Both are little-endian on x86 and arm.
const MAX_BANKS = 16;
const SELECT_SLOT = 8;
const SELECT_BYTES = 4;
const DIGESTS_PER_GROUP = 8;
const DIGEST_SLOT = 2 + 64;

export type PcrValues = ReadonlyMap<HashName, ReadonlyMap<number, Uint8Array>>;

/** The PCR file of `tpm2_quote -o` / `tpm2_checkquote -f` for `selection`, taking digests from `values`. */
export function encodePcrFile(selection: PcrSelection, values: PcrValues): Uint8Array {
  if (selection.length > MAX_BANKS)
    throw new RangeError(`at most ${MAX_BANKS} banks fit tpm2-tools' PCR file`);
  const digests: Uint8Array[] = [];
  const sel = Buffer.alloc(4 + MAX_BANKS * SELECT_SLOT);
  sel.writeUInt32LE(selection.length, 0);
  selection.forEach(({ hash, pcrs }, i) => {
    const at = 4 + i * SELECT_SLOT;
    sel.writeUInt16LE(HASH_ALG[hash], at);
    sel.writeUInt8(SELECT_BYTES, at + 2);
    for (const pcr of [...pcrs].sort((a, b) => a - b)) {
      if (pcr >= SELECT_BYTES * 8)
        throw new RangeError(`PCR ${pcr} does not fit tpm2-tools' ${SELECT_BYTES}-byte selection`);
      sel[at + 3 + (pcr >> 3)]! |= 1 << (pcr & 7);
      const digest = values.get(hash)?.get(pcr);
      if (digest === undefined) throw new RangeError(`no ${hash} value for PCR ${pcr}`);
      digests.push(digest);
    }
  });
  const groups = Math.ceil(digests.length / DIGESTS_PER_GROUP);
  const body = Buffer.alloc(4 + groups * (4 + DIGESTS_PER_GROUP * DIGEST_SLOT));
  body.writeUInt32LE(groups, 0);
  for (let g = 0; g < groups; g++) {
    const chunk = digests.slice(g * DIGESTS_PER_GROUP, (g + 1) * DIGESTS_PER_GROUP);
    const at = 4 + g * (4 + DIGESTS_PER_GROUP * DIGEST_SLOT);
    body.writeUInt32LE(chunk.length, at);
    chunk.forEach((d, k) => {
      body.writeUInt16LE(d.length, at + 4 + k * DIGEST_SLOT);
      body.set(d, at + 4 + k * DIGEST_SLOT + 2);
    });
  }
  return new Uint8Array(Buffer.concat([sel, body]));
}

export interface CheckquoteInput {
  akPublic: TpmPublic;
  /** TPMS_ATTEST (the quote message). */
  attest: Uint8Array;
  /** TPMT_SIGNATURE. */
  signature: Uint8Array;
  selection: PcrSelection;
  values: PcrValues;
  qualifyingData: Uint8Array;
}

export interface CheckquoteFiles {
  'ak.pem': string;
  'quote.msg': Uint8Array;
  'quote.sig': Uint8Array;
  'quote.pcrs': Uint8Array;
}

/** The files tpm2_checkquote reads, by the names `checkquoteArgs` expects. */
export function encodeCheckquoteFiles(q: CheckquoteInput): CheckquoteFiles {
  return {
    'ak.pem': publicKey(q.akPublic).export({ type: 'spki', format: 'pem' }).toString(),
    'quote.msg': q.attest,
    'quote.sig': q.signature,
    'quote.pcrs': encodePcrFile(q.selection, q.values),
  };
}

/** The tpm2_checkquote arguments that verify the files of `encodeCheckquoteFiles` in `dir`. */
export function checkquoteArgs(dir: string, qualifyingData: Uint8Array): string[] {
  const at = (name: keyof CheckquoteFiles) => (dir === '' ? name : `${dir.replace(/\/+$/, '')}/${name}`);
  // biome-ignore format: flag/value pairs read better one per line
  return [
    '-u', at('ak.pem'),
    '-m', at('quote.msg'),
    '-s', at('quote.sig'),
    '-f', at('quote.pcrs'),
    // The digest of the message; Vigil AKs sign with SHA-256 (AK_TEMPLATE).
    '-g', 'sha256',
    '-q', toHex(qualifyingData),
  ];
}
