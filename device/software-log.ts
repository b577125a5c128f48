import { readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import type { Tpm } from '../firmware-shims/tpm/tpm.ts';
import type { LogChunk, SwEntry, SwPcr } from '../shared/protocol/messages.ts';
import { replayExtends } from '../shared/tpm/pcr-values.ts';
import { writeFileAtomic } from './atomic-file.ts';

// The software log (PROTOCOL.md §2, log `sw`): every manifest digest the agent extended into
// swPcr, in order, so that the gateway can replay the log from a zeroed PCR and compare it with the
// quoted value. The log lives in DIR and outlives the process; the PCR lives in the TPM and
// outlives nothing but power. Opening the log reconciles the two (see `open`).
//
// Writes go log first, PCR second (write-ahead): a power cut between the two leaves a log one entry
// ahead of the PCR, which `open` recognises and completes. The reverse order would leave an
// extension nobody can account for.

export const SW_LOG_FILE = 'sw-log.json';
const SW_LOG_VERSION = 1;

type PcrTpm = Pick<Tpm, 'pcrRead' | 'pcrExtend'>;

const ZERO = new Uint8Array(32);

/** PCR value after extending `entries` in order into a PCR that started at zero. */
export function replaySoftwareLog(entries: readonly Pick<SwEntry, 'digest'>[]): Uint8Array {
  return replayExtends(entries.map((e) => e.digest));
}

const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0;

/**
 * How opening reconciled the stored log with the PCR:
 * - `continued`: the PCR replays from the stored log (agent restart, no reboot);
 * - `completed`: the PCR lacked only the last entry (power cut mid-write): it was extended now;
 * - `reset`: the PCR is zero (TPM reset, i.e. a reboot, or a first start): the log starts over at
 *   offset 0;
 * - `mismatch`: neither: something else extended the PCR or the log was lost. A new log starts,
 *   honestly: it cannot replay, so the gateway reports log-mismatch until the device reboots.
 */
export type OpenOutcome =
  | { readonly kind: 'continued' | 'completed' | 'reset'; readonly entries: number }
  | {
      readonly kind: 'mismatch';
      readonly pcrValue: string;
      readonly storedEntries: number;
      readonly archivedAs?: string;
    };

interface StoredLog {
  version: number;
  pcr: number;
  entries: { digest: string; name: string; version: string }[];
}

function readStored(file: string): StoredLog | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`software log ${file} cannot be read: ${(e as Error).message}`);
  }
  try {
    const s = JSON.parse(text) as StoredLog;
    if (
      s.version !== SW_LOG_VERSION ||
      !Array.isArray(s.entries) ||
      !s.entries.every(
        (e) => typeof e.digest === 'string' && /^[0-9a-f]{64}$/.test(e.digest) && typeof e.name === 'string',
      )
    ) {
      return { version: SW_LOG_VERSION, pcr: -1, entries: [] };
    }
    return s;
  } catch {
    // A corrupt log is treated like a lost one: reconciliation below decides what that means.
    return { version: SW_LOG_VERSION, pcr: -1, entries: [] };
  }
}

export interface SoftwareMeasurement {
  readonly name: string;
  readonly version: string;
  readonly digest: Uint8Array;
}

export class SoftwareLog {
  readonly #file: string;
  readonly pcr: SwPcr;
  #entries: SwEntry[];
  #generation = 0;

  private constructor(file: string, pcr: SwPcr, entries: SwEntry[]) {
    this.#file = file;
    this.pcr = pcr;
    this.#entries = entries;
  }

  /** Loads `DIR/sw-log.json` and reconciles it with the PCR as described at OpenOutcome. */
  static async open(
    dir: string,
    pcr: SwPcr,
    tpm: PcrTpm,
  ): Promise<{ log: SoftwareLog; outcome: OpenOutcome }> {
    const file = join(dir, SW_LOG_FILE);
    const stored = readStored(file);
    // A log kept for another PCR says nothing about this one.
    const entries: SwEntry[] =
      stored && stored.pcr === pcr
        ? stored.entries.map((e) => ({
            digest: new Uint8Array(Buffer.from(e.digest, 'hex')),
            name: e.name,
            version: e.version,
          }))
        : [];
    const value = (await tpm.pcrRead([pcr])).get(pcr);
    if (value === undefined) throw new Error(`TPM2_PCR_Read returned no SHA-256 value for PCR ${pcr}`);
    const log = new SoftwareLog(file, pcr, entries);
    // Zero first: after a reset even a one-entry log "replays but for its last entry", and
    // completing it would claim a measurement from the previous boot.
    if (same(value, ZERO)) {
      log.#entries = [];
      log.#persist();
      return { log, outcome: { kind: 'reset', entries: 0 } };
    }
    if (same(replaySoftwareLog(entries), value)) {
      return { log, outcome: { kind: 'continued', entries: entries.length } };
    }
    if (entries.length > 0 && same(replaySoftwareLog(entries.slice(0, -1)), value)) {
      await tpm.pcrExtend(pcr, entries[entries.length - 1]!.digest);
      return { log, outcome: { kind: 'completed', entries: entries.length } };
    }
    log.#entries = [];
    let archivedAs: string | undefined;
    if (stored !== undefined) {
      // Kept for whoever investigates why the PCR moved; never read back.
      archivedAs = `${file}.mismatch-${Date.now()}`;
      renameSync(file, archivedAs);
    }
    log.#persist();
    return {
      log,
      outcome: {
        kind: 'mismatch',
        pcrValue: Buffer.from(value).toString('hex'),
        storedEntries: stored?.entries.length ?? 0,
        ...(archivedAs !== undefined && { archivedAs }),
      },
    };
  }

  get length(): number {
    return this.#entries.length;
  }

  /** Increases each time the log starts over under a running agent (see `restartAfterReset`). */
  get generation(): number {
    return this.#generation;
  }

  /** The value the PCR must hold if nothing but this log extended it. */
  expectedPcr(): Uint8Array {
    return replaySoftwareLog(this.#entries);
  }

  /**
   * The TPM was reset while the agent kept running (the PCR read zero in a round): the log starts
   * over, like at a start after a reboot, and what runs now is measured again.
   */
  async restartAfterReset(tpm: PcrTpm, now: SoftwareMeasurement): Promise<void> {
    this.#entries = [];
    this.#generation++;
    this.#persist();
    await this.record(tpm, now);
  }

  /** The last entry for `name`: what the log says runs now. */
  current(name: string): SwEntry | undefined {
    for (let i = this.#entries.length - 1; i >= 0; i--)
      if (this.#entries[i]!.name === name) return this.#entries[i];
    return undefined;
  }

  /**
   * Appends and extends `m` unless the log already names it as what runs now: restarting the same
   * software does not grow the log, a changed one (new version or files) is one new entry.
   */
  async record(tpm: PcrTpm, m: SoftwareMeasurement): Promise<boolean> {
    const now = this.current(m.name);
    if (now !== undefined && now.version === m.version && same(now.digest, m.digest)) return false;
    this.#entries.push({ digest: new Uint8Array(m.digest), name: m.name, version: m.version });
    this.#persist();
    await tpm.pcrExtend(this.pcr, m.digest);
    return true;
  }

  /**
   * Entries from `from` on. An offset past the end (the gateway remembers an offset from before a
   * reboot) is answered from 0: the gateway accepts `from: 0` as a full replay. Not chunked by
   * default: the gateway treats `more: true` on this log as log-mismatch (docs/protocol.md §4),
   * and a log that grows by one entry per software change stays small.
   */
  chunk(from: number, max = Number.POSITIVE_INFINITY): LogChunk<SwEntry> {
    const start = from > this.#entries.length ? 0 : from;
    const entries = this.#entries.slice(start, start + max);
    return { from: start, entries, more: start + entries.length < this.#entries.length };
  }

  #persist(): void {
    const stored: StoredLog = {
      version: SW_LOG_VERSION,
      pcr: this.pcr,
      entries: this.#entries.map((e) => ({
        digest: Buffer.from(e.digest).toString('hex'),
        name: e.name,
        version: e.version,
      })),
    };
    writeFileAtomic(this.#file, `${JSON.stringify(stored, null, 2)}\n`);
  }
}
