import type { FileHandle } from 'node:fs/promises';
import { type LogRead, type LogSource, readLogFile } from './source.ts';

// The kernel's IMA ASCII runtime measurement list: one measurement per line, appended for as long
// as the system runs. Entries are lines (without the newline); offsets count lines. Periodic
// rounds ask for the lines after the last one the gateway has, so the source remembers where the
// previous read stopped (line number and byte offset) and reads only the new tail.

export const DEFAULT_IMA_PATH = '/sys/kernel/security/ima/ascii_runtime_measurements';
/** Bounds one chunk so that evidence stays far below the 1 MiB payload limit. */
export const IMA_CHUNK_BYTES = 256 * 1024;
export const IMA_CHUNK_LINES = 4096;
const BLOCK = 64 * 1024;

export interface ImaLimits {
  readonly maxBytes?: number;
  readonly maxLines?: number;
}

export class ImaLog implements LogSource<string> {
  readonly path: string;
  readonly #maxBytes: number;
  readonly #maxLines: number;
  /** The start of line `line` is at byte `byte`: where the last read stopped. */
  #cursor = { line: 0, byte: 0 };

  constructor(path: string = DEFAULT_IMA_PATH, limits: ImaLimits = {}) {
    this.path = path;
    this.#maxBytes = limits.maxBytes ?? IMA_CHUNK_BYTES;
    this.#maxLines = limits.maxLines ?? IMA_CHUNK_LINES;
  }

  read(from: number): Promise<LogRead<string>> {
    return readLogFile(this.path, async (fh) => {
      const chunk = await this.#readFrom(fh, from);
      // An offset past the end: the list restarted (a reboot) since the gateway last read it.
      if (chunk === 'past-end') return (await this.#readFrom(fh, 0)) as Chunk;
      return chunk;
    });
  }

  async #readFrom(fh: FileHandle, from: number): Promise<Chunk | 'past-end'> {
    // Start from the remembered cursor when it is not beyond the line asked for, else from 0.
    const start = this.#cursor.line <= from ? this.#cursor : { line: 0, byte: 0 };
    let line = start.line;
    let pos = start.byte;
    let lineStart = pos;
    let pending: Buffer[] = [];
    const entries: string[] = [];
    let bytes = 0;
    const buf = Buffer.alloc(BLOCK);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, BLOCK, pos);
      if (bytesRead === 0) break;
      let at = 0;
      while (at < bytesRead) {
        const nl = buf.indexOf(0x0a, at);
        const end = nl === -1 || nl >= bytesRead ? bytesRead : nl;
        if (line >= from) pending.push(Buffer.from(buf.subarray(at, end)));
        if (nl === -1 || nl >= bytesRead) {
          at = bytesRead;
          break;
        }
        // A complete line.
        if (line >= from) {
          const raw = Buffer.concat(pending);
          pending = [];
          if (entries.length >= this.#maxLines || bytes + raw.length + 1 > this.#maxBytes) {
            this.#cursor = { line, byte: lineStart };
            return { from, entries, more: true };
          }
          entries.push(raw.toString('utf8'));
          bytes += raw.length + 1;
        }
        line++;
        lineStart = pos + nl + 1;
        at = nl + 1;
      }
      pos += bytesRead;
    }
    // A regular file may end without a newline; its last line is complete all the same.
    const tail = Buffer.concat(pending);
    if (line >= from && tail.length > 0) {
      if (entries.length >= this.#maxLines || bytes + tail.length + 1 > this.#maxBytes) {
        this.#cursor = { line, byte: lineStart };
        return { from, entries, more: true };
      }
      entries.push(tail.toString('utf8'));
      line++;
      lineStart = pos;
    }
    if (from > line) return 'past-end';
    this.#cursor = { line, byte: lineStart };
    return { from, entries, more: false };
  }
}

type Chunk = { from: number; entries: string[]; more: boolean };
