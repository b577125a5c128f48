import type { LogChunk, SwEntry } from '../../shared/protocol/index.ts';
import { extendPcr, toHex } from '../../shared/tpm/index.ts';
import type { SoftwareIdentity, SwLogState } from '../model.ts';

const ZERO = new Uint8Array(32);

export type Replay =
  | { readonly ok: true; readonly state: SwLogState }
  | { readonly ok: false; readonly detail: string };

/**
 * Replays a chunk of the software log onto what the gateway already replayed since the TPM's
 * last reset. A chunk from 0 is a full replay (the agent restarts its log after a reboot); any
 * other start must be exactly where the gateway left off.
 */
export function replaySwLog(
  previous: SwLogState | undefined,
  resetCount: number,
  chunk: LogChunk<SwEntry>,
  quoted: Uint8Array,
): Replay {
  if (chunk.more) {
    return {
      ok: false,
      detail: `software log incomplete: chunk from ${chunk.from} says more entries follow`,
    };
  }
  const continues = previous !== undefined && previous.resetCount === resetCount;
  let pcr: Uint8Array;
  let running: SoftwareIdentity[];
  if (chunk.from === 0) {
    pcr = ZERO;
    running = [];
  } else if (continues && chunk.from === previous.count) {
    pcr = previous.pcr;
    running = [...previous.running];
  } else {
    const have = continues ? `${previous.count} entries` : 'nothing';
    return {
      ok: false,
      detail: `software log chunk starts at entry ${chunk.from}, but the gateway has replayed ${have} since TPM reset ${resetCount}`,
    };
  }
  for (const e of chunk.entries) {
    pcr = extendPcr(pcr, e.digest);
    const i = running.findIndex((r) => r.name === e.name);
    // A copy: the entry's bytes are a view into the whole evidence message, which the device's
    // record would otherwise keep alive until the software changes.
    const identity = { name: e.name, version: e.version, digest: new Uint8Array(e.digest) };
    if (i < 0) running.push(identity);
    else running[i] = identity;
  }
  if (Buffer.compare(pcr, quoted) !== 0) {
    return {
      ok: false,
      detail: `software log replays to ${toHex(pcr)} after ${chunk.from + chunk.entries.length} entries, but the quoted PCR is ${toHex(quoted)}`,
    };
  }
  // Nothing new since the last round (the steady state): the same state, nothing to allocate.
  if (chunk.entries.length === 0 && continues && chunk.from === previous.count)
    return { ok: true, state: previous };
  return { ok: true, state: { resetCount, count: chunk.from + chunk.entries.length, pcr, running } };
}
