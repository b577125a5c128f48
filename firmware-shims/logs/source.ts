import { type FileHandle, open } from 'node:fs/promises';
import type { LogChunk } from '../../shared/protocol/messages.ts';

// A measurement log the kernel may or may not expose. Reading one yields either a chunk from the
// offset asked or the fact that the log is absent (file missing, or not readable by this user):
// an absent log is left out of the evidence, and the gateway reports what it covers as unmeasured.
// Nothing here ever substitutes an empty log for a missing one.

export type LogRead<E> =
  | { readonly kind: 'present'; readonly chunk: LogChunk<E> }
  | { readonly kind: 'absent'; readonly path: string; readonly reason: string };

export interface LogSource<E> {
  /** Where the log is read from, for messages. */
  readonly path: string;
  /** Entries from `from` on, in one bounded chunk; an offset past the end is answered from 0. */
  read(from: number): Promise<LogRead<E>>;
}

/**
 * Reads one chunk of the log at `path` with `read`, on a handle open for that read only. A log
 * that cannot be opened, or fails while it is read, is absent.
 */
export async function readLogFile<E>(
  path: string,
  read: (fh: FileHandle) => Promise<LogChunk<E>>,
): Promise<LogRead<E>> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    return absence(path, e);
  }
  try {
    return { kind: 'present', chunk: await read(fh) };
  } catch (e) {
    return absence(path, e);
  } finally {
    await fh.close();
  }
}

/** An absent log, described for the operator: missing is normal on a Pi, unreadable is a setup issue. */
export function absence(path: string, e: unknown): { kind: 'absent'; path: string; reason: string } {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return { kind: 'absent', path, reason: 'not present (the kernel does not expose this log)' };
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return {
      kind: 'absent',
      path,
      reason: `not readable by this user (${code}); see docs/agent.md for granting read access`,
    };
  }
  return { kind: 'absent', path, reason: `cannot be read: ${(e as Error).message}` };
}
