import { digestOf } from '../digest.ts';
import type { HashName } from './constants.ts';
import type { PcrSelection } from './pcr-selection.ts';

// PCR arithmetic done in software, identically on both sides: the agent checks its quote and
// replays its own log with it, the verifier recomputes what the TPM computed.

/**
 * The PCR digest a quote carries: H(value_1 || ... || value_n) in selection order, hashed with the
 * signing scheme's hash, whatever the banks' (Part 3 §18.4).
 */
export function pcrDigest(values: readonly Uint8Array[], hash: HashName = 'sha256'): Uint8Array {
  return new Uint8Array(digestOf(hash, ...values));
}

/** Values of `selection` from `values` (bank → PCR → digest) in the order the TPM hashes them. */
export function selectedValues(
  selection: PcrSelection,
  values: ReadonlyMap<HashName, ReadonlyMap<number, Uint8Array>>,
): Uint8Array[] | undefined {
  const out: Uint8Array[] = [];
  for (const { hash, pcrs } of selection) {
    for (const pcr of pcrs) {
      const v = values.get(hash)?.get(pcr);
      if (v === undefined) return undefined;
      out.push(v);
    }
  }
  return out;
}

/** PCR_Extend in software: new = H(old || digest). */
export function extendPcr(pcr: Uint8Array, digest: Uint8Array, hash: HashName = 'sha256'): Uint8Array {
  return new Uint8Array(digestOf(hash, pcr, digest));
}

/** The value a PCR holds after `digests` were extended into it, starting from `start` (zero at reset). */
export function replayExtends(
  digests: Iterable<Uint8Array>,
  start: Uint8Array = new Uint8Array(32),
  hash: HashName = 'sha256',
): Uint8Array {
  let pcr = start;
  for (const d of digests) pcr = extendPcr(pcr, d, hash);
  return pcr;
}
