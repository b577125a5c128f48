import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { writeCheckquoteFiles } from '../../firmware-shims/tpm/checkquote-files.ts';
import type { AttestationKeys } from '../../firmware-shims/tpm/provision.ts';
import type { Quote } from '../../firmware-shims/tpm/quote.ts';
import { Tpm } from '../../firmware-shims/tpm/tpm.ts';
import { Reader } from '../../shared/tpm/bytes.ts';
import type { HashName } from '../../shared/tpm/constants.ts';
import type { PcrSelection } from '../../shared/tpm/pcr-selection.ts';
import { type Swtpm, type SwtpmOptions, startSwtpm } from '../support/swtpm.ts';

export interface TpmFixture {
  swtpm: Swtpm;
  tpm: Tpm;
  stop(): Promise<void>;
}

/** A private swtpm and our Tpm on it; `stop` is safe to call even if start failed halfway. */
export async function startTpm(opts: SwtpmOptions = {}): Promise<TpmFixture> {
  const swtpm = await startSwtpm(opts);
  const tpm = await Tpm.open(swtpm.tcti);
  return {
    swtpm,
    tpm,
    async stop() {
      try {
        await tpm.close();
      } finally {
        await swtpm.stop();
      }
    },
  };
}

export interface CheckquoteInput {
  quote: Quote;
  qualifyingData: Uint8Array;
  values: Map<HashName, Map<number, Uint8Array>>;
  /** tpm2_checkquote's arguments for the files written. */
  args: string[];
}

/** Our quote over `selection` and the PCRs read after it, written in `dir` as tpm2_checkquote takes them. */
export async function quoteForCheckquote(
  tpm: Tpm,
  keys: AttestationKeys,
  dir: string,
  selection: PcrSelection,
): Promise<CheckquoteInput> {
  const qualifyingData = randomBytes(32);
  const quote = await tpm.quote(keys.ak.handle, qualifyingData, selection);
  const values = new Map<HashName, Map<number, Uint8Array>>([['sha256', await tpm.pcrRead(selection)]]);
  const args = await writeCheckquoteFiles(dir, {
    akPublic: keys.ak.public,
    ...quote,
    selection,
    values,
    qualifyingData,
  });
  return { quote, qualifyingData, values, args };
}

/** Contents of a TPM2B file as tpm2-tools writes them (`-u ek.pub`: TPM2B_PUBLIC). */
export async function readTpm2bFile(path: string): Promise<Uint8Array> {
  const r = new Reader(new Uint8Array(await readFile(path)), path);
  const contents = r.tpm2b();
  r.end();
  return contents;
}

/** Parses `tpm2_pcrread` YAML into bank → PCR → digest. */
export function parsePcrreadOutput(stdout: string): Map<string, Map<number, string>> {
  const banks = new Map<string, Map<number, string>>();
  let bank: Map<number, string> | undefined;
  for (const line of stdout.split('\n')) {
    const head = /^\s*(sha\d+):\s*$/.exec(line);
    if (head) {
      bank = new Map();
      banks.set(head[1]!, bank);
      continue;
    }
    const value = /^\s*(\d+)\s*:\s*0x([0-9A-Fa-f]+)\s*$/.exec(line);
    if (value && bank) bank.set(Number(value[1]), value[2]!.toLowerCase());
  }
  return banks;
}
