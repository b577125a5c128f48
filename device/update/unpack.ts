import { constants, createReadStream } from 'node:fs';
import { chmod, type FileHandle, lstat, mkdir, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { TarError } from '../../shared/tar/header.ts';
import { type TarEvent, UstarReader } from '../../shared/tar/reader.ts';
import { syncDirectory } from '../atomic-file.ts';

// Unpacks a release archive into a directory that does not exist yet, as root would on a device,
// trusting nothing in it: the reader (shared/tar/reader.ts) refuses every unsafe entry before it
// is acted on, and the file system part adds its own guards. The target is created 0700 so no one
// else can plant a link in it while it fills, every parent is checked with lstat to be a real
// directory, files are created with O_CREAT|O_EXCL|O_NOFOLLOW (never through an existing name or
// link), and each file and directory is fsync'd before the tree is called unpacked. On any failure
// the target is removed whole.

const CREATE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

export interface UnpackOptions {
  /** The archive's declared size: nothing larger is read. */
  readonly limit: number;
  /** Sees every event, e.g. a TreeMeasure. */
  readonly onEvent?: (e: TarEvent) => void;
}

export async function unpackArchive(file: string, target: string, opts: UnpackOptions): Promise<void> {
  await mkdir(target, { mode: 0o700 });
  const dirs = new Set<string>(['']);
  let out: FileHandle | undefined;

  /** Makes sure every directory of `path` exists here and is a directory, not a link. */
  const ensureDirs = async (path: string, withLast: boolean) => {
    const parts = path.split('/');
    const n = withLast ? parts.length : parts.length - 1;
    for (let i = 1; i <= n; i++) {
      const rel = parts.slice(0, i).join('/');
      if (dirs.has(rel)) continue;
      const abs = join(target, rel);
      const st = await lstat(abs).catch(() => undefined);
      if (st === undefined) await mkdir(abs, { mode: 0o700 });
      else if (!st.isDirectory() || st.isSymbolicLink())
        throw new TarError(`${rel} exists in the unpacked tree and is not a directory`);
      dirs.add(rel);
    }
  };

  const reader = new UstarReader({ limit: opts.limit });
  try {
    for await (const chunk of createReadStream(file, { highWaterMark: 64 * 1024 })) {
      for (const e of reader.push(chunk as Buffer)) {
        opts.onEvent?.(e);
        if (e.kind === 'entry') {
          if (e.entry.type === 'dir') await ensureDirs(e.entry.path, true);
          else {
            await ensureDirs(e.entry.path, false);
            // Group and others never get write access, whatever the archive says.
            out = await open(join(target, e.entry.path), CREATE, e.entry.mode & 0o755);
          }
        } else if (e.kind === 'data') await out!.write(e.bytes);
        else if (e.kind === 'entry-end' && out) {
          await out.sync();
          await out.close();
          out = undefined;
        }
      }
    }
    reader.end();
    // Deepest first, so that a directory is synced after what it holds.
    for (const rel of [...dirs].sort((a, b) => b.length - a.length)) {
      await chmod(join(target, rel), 0o755);
      syncDirectory(join(target, rel));
    }
  } catch (e) {
    await out?.close().catch(() => undefined);
    await rm(target, { recursive: true, force: true });
    throw e;
  }
}
