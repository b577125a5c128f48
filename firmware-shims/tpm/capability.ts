import { Reader, Writer } from '../../shared/tpm/bytes.ts';
import { type HashName, hashName, TPM_CAP, TPM_CC, TPM_HT } from '../../shared/tpm/constants.ts';
import { readRawPcrSelection } from '../../shared/tpm/pcr-selection.ts';
import type { CommandRunner } from './command.ts';

interface CapabilityPage<T> {
  more: boolean;
  items: T[];
}

async function getCapability<T>(
  tpm: CommandRunner,
  capability: number,
  property: number,
  count: number,
  readItem: (r: Reader) => T,
): Promise<CapabilityPage<T>> {
  const res = await tpm.execute({
    code: TPM_CC.GetCapability,
    parameters: new Writer().u32(capability).u32(property).u32(count).finish(),
  });
  const r = new Reader(res.parameters, 'TPMS_CAPABILITY_DATA');
  const more = r.u8('moreData') === 1;
  const got = r.u32('capability');
  if (got !== capability)
    throw new Error(`TPM2_GetCapability: asked for capability ${capability}, got ${got}`);
  const n = r.u32('count');
  const items: T[] = [];
  for (let i = 0; i < n; i++) items.push(readItem(r));
  r.end();
  return { more, items };
}

// Pages through a capability whose items are keyed by a property/handle, continuing after the last one.
async function getAll<T>(
  tpm: CommandRunner,
  capability: number,
  first: number,
  last: number,
  readItem: (r: Reader) => T,
  keyOf: (item: T) => number,
): Promise<T[]> {
  const all: T[] = [];
  let next = first;
  for (;;) {
    const page = await getCapability(tpm, capability, next, 64, readItem);
    const inRange = page.items.filter((i) => keyOf(i) <= last);
    all.push(...inRange);
    const lastItem = page.items.at(-1);
    if (!page.more || lastItem === undefined || inRange.length < page.items.length) return all;
    next = keyOf(lastItem) + 1;
  }
}

/** TPM_CAP_TPM_PROPERTIES from `first` through `last`, as property → value. */
export async function properties(
  tpm: CommandRunner,
  first: number,
  last = first,
): Promise<Map<number, number>> {
  const items = await getAll(
    tpm,
    TPM_CAP.TPM_PROPERTIES,
    first,
    last,
    (r) => ({ property: r.u32('property'), value: r.u32('value') }),
    (i) => i.property,
  );
  return new Map(items.map((i) => [i.property, i.value]));
}

export async function property(tpm: CommandRunner, pt: number): Promise<number | undefined> {
  return (await properties(tpm, pt)).get(pt);
}

/** Handles of one type (TPM_HT, the top byte), e.g. every persistent object. */
export async function handles(tpm: CommandRunner, type: number): Promise<number[]> {
  const first = type * 0x1000000;
  return getAll(
    tpm,
    TPM_CAP.HANDLES,
    first,
    first + 0xffffff,
    (r) => r.u32('handle'),
    (h) => h,
  );
}

export const persistentHandles = (tpm: CommandRunner): Promise<number[]> => handles(tpm, TPM_HT.PERSISTENT);

export interface PcrBank {
  hash: HashName;
  /** The PCRs allocated in this bank; empty when the bank exists but is not active. */
  pcrs: number[];
}

/** The PCR banks the TPM reports, skipping hash algorithms Vigil does not know (e.g. SM3). */
export async function pcrBanks(tpm: CommandRunner): Promise<PcrBank[]> {
  const res = await tpm.execute({
    code: TPM_CC.GetCapability,
    parameters: new Writer().u32(TPM_CAP.PCRS).u32(0).u32(1).finish(),
  });
  const r = new Reader(res.parameters, 'TPMS_CAPABILITY_DATA');
  r.u8('moreData');
  r.u32('capability');
  const banks = readRawPcrSelection(r);
  r.end();
  const known: PcrBank[] = [];
  for (const { alg, pcrs } of banks) {
    const hash = hashName(alg);
    if (hash !== undefined) known.push({ hash, pcrs });
  }
  return known;
}

/** TPM_ECC_CURVE ids the TPM implements. */
export async function eccCurves(tpm: CommandRunner): Promise<number[]> {
  return getAll(
    tpm,
    TPM_CAP.ECC_CURVES,
    0,
    0xffff,
    (r) => r.u16('curve'),
    (c) => c,
  );
}
