import type { FileHandle } from 'node:fs/promises';
import { type LogRead, type LogSource, readLogFile } from './source.ts';

// The firmware's binary TCG event log, as the kernel exposes it. It is sent as raw bytes in
// fixed-size chunks: entry i is bytes [i * BOOT_CHUNK_BYTES, (i + 1) * BOOT_CHUNK_BYTES) of the
// log (the last one shorter), so offsets stay meaningful across rounds without the agent parsing
// events: the verifier concatenates entries 0..n and parses the whole log itself. The log does not
// change after boot, so a gateway normally asks for it once per boot.

export const DEFAULT_BOOT_LOG_PATH = '/sys/kernel/security/tpm0/binary_bios_measurements';
/** Size of one entry of the `boot` log (docs/agent.md); part of what the gateway must know. */
export const BOOT_CHUNK_BYTES = 4096;
/** Entries per evidence: 256 KiB, far below the 1 MiB payload limit. */
export const BOOT_CHUNK_ENTRIES = 64;

export class BootLog implements LogSource<Uint8Array> {
  readonly path: string;
  readonly #maxEntries: number;

  constructor(path: string = DEFAULT_BOOT_LOG_PATH, maxEntries = BOOT_CHUNK_ENTRIES) {
    this.path = path;
    this.#maxEntries = maxEntries;
  }

  read(from: number): Promise<LogRead<Uint8Array>> {
    return readLogFile(this.path, async (fh) => {
      const chunk = await this.#readFrom(fh, from);
      // Past the end (entry from-1 does not exist either): the log is another boot's than the one
      // the gateway read. Start over.
      if (
        chunk.entries.length === 0 &&
        from > 0 &&
        !(await this.#hasByte(fh, (from - 1) * BOOT_CHUNK_BYTES))
      ) {
        return this.#readFrom(fh, 0);
      }
      return chunk;
    });
  }

  // securityfs reports size 0, so the log is read until EOF instead of trusting stat.
  async #readFrom(fh: FileHandle, from: number) {
    const entries: Uint8Array[] = [];
    let index = from;
    for (; entries.length < this.#maxEntries; index++) {
      const entry = await this.#entry(fh, index);
      if (entry.length > 0) entries.push(entry);
      if (entry.length < BOOT_CHUNK_BYTES) return { from, entries, more: false };
    }
    // Exactly full: there is more only if a byte follows.
    return { from, entries, more: await this.#hasByte(fh, index * BOOT_CHUNK_BYTES) };
  }

  async #entry(fh: FileHandle, index: number): Promise<Uint8Array> {
    const buf = Buffer.alloc(BOOT_CHUNK_BYTES);
    let got = 0;
    while (got < BOOT_CHUNK_BYTES) {
      const { bytesRead } = await fh.read(buf, got, BOOT_CHUNK_BYTES - got, index * BOOT_CHUNK_BYTES + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return new Uint8Array(buf.subarray(0, got));
  }

  async #hasByte(fh: FileHandle, at: number): Promise<boolean> {
    const { bytesRead } = await fh.read(Buffer.alloc(1), 0, 1, at);
    return bytesRead === 1;
  }
}
