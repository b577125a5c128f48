import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, truncate } from 'node:fs/promises';
import { dirname } from 'node:path';

// The artifact as it arrives in chunks: one file, written at the offsets the device asked for and
// fsync'd after each chunk, so that the offset recorded in the update state never runs ahead of
// the bytes on disk and a fetch resumes where it stopped (after a restart, at the recorded offset).

export class StagingFile {
  constructor(readonly file: string) {}

  /** Cuts the file to `length` bytes (creating it empty if absent). */
  async reset(length: number): Promise<void> {
    await mkdir(dirname(this.file), { recursive: true, mode: 0o750 });
    const fh = await open(this.file, 'a', 0o600);
    await fh.close();
    await truncate(this.file, length);
  }

  /** Writes `data` at `offset` and makes it durable; returns the end of what was written. */
  async write(offset: number, data: Uint8Array): Promise<number> {
    const fh = await open(this.file, 'r+');
    try {
      let done = 0;
      while (done < data.length) {
        const { bytesWritten } = await fh.write(data, done, data.length - done, offset + done);
        done += bytesWritten;
      }
      await fh.datasync();
    } finally {
      await fh.close();
    }
    return offset + data.length;
  }

  /** Size and hex SHA-256 of what is staged. */
  async hash(): Promise<{ size: number; sha256: string }> {
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of createReadStream(this.file, { highWaterMark: 64 * 1024 })) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
    return { size, sha256: hash.digest('hex') };
  }
}
