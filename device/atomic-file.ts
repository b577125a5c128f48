import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface AtomicWriteOptions {
  readonly mode?: number;
  /**
   * fsync the file and its directory (default). Off only for files that may be lost in a power
   * cut: an fsync costs milliseconds of CPU here and far more on an SD card, and wears it.
   */
  readonly durable?: boolean;
}

/**
 * Writes `data` to `file` so that a reader (or the agent after a power cut) sees either the old
 * content or the new, never a torn file: write a sibling, fsync it, rename over the target, fsync
 * the directory. A Pi's SD card loses power often; the software log must survive it.
 */
export function writeFileAtomic(
  file: string,
  data: string | Uint8Array,
  opts: AtomicWriteOptions = {},
): void {
  const durable = opts.durable ?? true;
  const tmp = join(dirname(file), `.${process.pid}.${Date.now()}.tmp`);
  const fd = openSync(tmp, 'w', opts.mode ?? 0o644);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    if (durable) fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    unlinkSync(tmp);
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, file);
  if (durable) syncDirectory(dirname(file));
}

/** fsync a directory, so that a rename or a new entry in it survives a power cut. */
export function syncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Some filesystems refuse fsync on a directory; the rename is still atomic there.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
