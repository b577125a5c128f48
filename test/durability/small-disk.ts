import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { join } from 'node:path';

// A real full disk without filling the machine's: a tmpfs of a few megabytes mounted for the test
// (root only, as the test machines run), filled to the last block by a filler file, freed by
// deleting it. SQLite then meets ENOSPC exactly as on a full partition.

export interface SmallDisk {
  readonly dir: string;
  /** Fills the file system but `leaveBytes`; returns the filler's size. */
  fill(leaveBytes: number): number;
  /** Deletes the filler: the space returns. */
  free(): void;
  unmount(): void;
}

export function mountSmallDisk(dir: string, bytes: number): SmallDisk {
  mkdirSync(dir, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0700`, 'vigil-test', dir], {
      stdio: 'pipe',
    });
  } catch (e) {
    throw new Error(
      `cannot mount a ${bytes}-byte tmpfs on ${dir} (${(e as { stderr?: Buffer }).stderr?.toString().trim() ?? e}): this test needs root`,
    );
  }
  const filler = join(dir, 'filler');
  let mounted = true;
  return {
    dir,
    fill(leaveBytes) {
      const fd = openSync(filler, 'a');
      let written = 0;
      try {
        const chunk = Buffer.alloc(4096);
        for (;;) {
          const s = statfsSync(dir);
          const free = s.bavail * s.bsize;
          if (free <= leaveBytes) break;
          written += writeSync(fd, chunk, 0, Math.min(chunk.length, free - leaveBytes));
        }
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
      } finally {
        closeSync(fd);
      }
      return written;
    },
    free() {
      rmSync(filler, { force: true });
    },
    unmount() {
      if (!mounted) return;
      execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
      mounted = false;
    },
  };
}
