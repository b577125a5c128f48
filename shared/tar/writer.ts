import { byteOrder, isManifestPath } from '../protocol/software-manifest.ts';
import { concat } from '../tpm/bytes.ts';
import {
  BLOCK,
  encodeHeader,
  type HeaderFields,
  MAX_ENTRY_SIZE,
  paddingOf,
  TarError,
  TYPEFLAG,
  USTAR_MAGIC,
  USTAR_VERSION,
} from './header.ts';

// Writing release archives (PROTOCOL.md §6.1): plain ustar, regular files and directories only, no
// pax or GNU headers, and deterministic, so that the same tree always gives the same bytes and the
// same artifact sha256 on any build machine:
// - entries sorted by path in UTF-8 byte order (a directory precedes what it holds);
// - mtime 0, uid and gid 0, empty user and group names;
// - mode 0755 for directories and for files executable by their owner, 0644 for other files.
// The file data is the caller's to stream (header, data, padding); `writeUstar` does it in memory.

export interface TarEntryInput {
  /** Relative, `/`-separated, as the software manifest names paths. */
  readonly path: string;
  readonly type: 'file' | 'dir';
  /** Bytes of a file (0 for a directory). */
  readonly size: number;
  /** A file its owner may execute: written 0755 instead of 0644. */
  readonly executable?: boolean;
}

const utf8Length = (s: string) => new TextEncoder().encode(s).length;

/**
 * Splits a path into ustar's prefix (155 bytes) and name (100 bytes) at a `/`; a path that does not
 * fit is refused (the pax extension that would carry it is not allowed).
 */
function splitPath(path: string): { prefix: string; name: string } {
  if (utf8Length(path) <= 100) return { prefix: '', name: path };
  for (let i = path.indexOf('/'); i >= 0; i = path.indexOf('/', i + 1)) {
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (utf8Length(prefix) <= 155 && utf8Length(name) <= 100 && name !== '') return { prefix, name };
  }
  throw new TarError(
    `${JSON.stringify(path)} is too long for a ustar header (at most 155 bytes of directories and 100 of name): shorten it`,
  );
}

/** What every header of a release archive holds, whatever the entry (the policy above). */
export const FIXED_FIELDS = {
  uid: 0,
  gid: 0,
  mtime: 0,
  linkname: '',
  magic: USTAR_MAGIC,
  version: USTAR_VERSION,
  uname: '',
  gname: '',
  devmajor: 0,
  devminor: 0,
} as const satisfies Partial<HeaderFields>;

/** The header of one entry under the policy above. */
export function entryHeader(e: TarEntryInput): Uint8Array {
  if (!isManifestPath(e.path))
    throw new TarError(
      `${JSON.stringify(e.path)} cannot go into a release archive: expected a relative /-separated path without empty, "." or ".." segments, backslashes or control characters`,
    );
  if (e.type === 'dir' && e.size !== 0) throw new TarError(`directory ${e.path} cannot have a size`);
  if (!Number.isSafeInteger(e.size) || e.size < 0 || e.size > MAX_ENTRY_SIZE)
    throw new TarError(`${e.path}: ${e.size} bytes is more than a ustar entry holds (8 GiB - 1)`);
  // A directory's name ends in `/` by convention, which every tar implementation writes.
  const { prefix, name } = splitPath(e.type === 'dir' ? `${e.path}/` : e.path);
  return encodeHeader({
    ...FIXED_FIELDS,
    name,
    prefix,
    mode: e.type === 'dir' || e.executable ? 0o755 : 0o644,
    size: e.size,
    typeflag: e.type === 'dir' ? TYPEFLAG.dir : TYPEFLAG.file,
  });
}

/** Zero bytes after `size` bytes of file data, up to the next block. */
export function entryPadding(size: number): Uint8Array {
  return new Uint8Array(paddingOf(size));
}

/** Two zero blocks end an archive. */
export const END_OF_ARCHIVE: Uint8Array = new Uint8Array(2 * BLOCK);

/** Sorts entries into archive order (by path bytes). */
export function archiveOrder<T extends { readonly path: string }>(entries: readonly T[]): T[] {
  return [...entries].sort((a, b) => byteOrder(a.path, b.path));
}

export interface TarMemberInput {
  readonly path: string;
  /** Absent for a directory. */
  readonly data?: Uint8Array;
  readonly executable?: boolean;
}

/** A whole archive in memory, for small trees and tests; large ones are streamed entry by entry. */
export function writeUstar(members: readonly TarMemberInput[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const m of archiveOrder(members)) {
    const size = m.data?.length ?? 0;
    parts.push(
      entryHeader({
        path: m.path,
        type: m.data ? 'file' : 'dir',
        size,
        ...(m.executable !== undefined && { executable: m.executable }),
      }),
    );
    if (m.data) parts.push(m.data, entryPadding(size));
  }
  return concat(...parts, END_OF_ARCHIVE);
}
