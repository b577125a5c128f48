import { isManifestPath } from '../protocol/software-manifest.ts';
import {
  BLOCK,
  decodeHeader,
  headerChecksum,
  isZeroBlock,
  paddingOf,
  TarError,
  TYPEFLAG,
  USTAR_MAGIC,
  USTAR_VERSION,
} from './header.ts';

// Reading release archives, which come from the network and are unpacked by root on the device:
// every header is checked before anything is done with it, and anything that is not a plain ustar
// regular file or directory at a safe relative path is refused with the entry named. Streaming and
// pure: bytes are pushed in as they arrive, events come out; the file system is the caller's.
//
// Refused: links (hard and symbolic), devices, fifos, pax and GNU extension headers, base-256
// numbers, a wrong checksum, absolute paths, `.` or `..` segments, backslashes, control characters,
// non-UTF-8 names, setuid/setgid/sticky modes, an entry twice, an entry below a file, an archive
// larger than declared, one cut short, and anything but zeros after the end-of-archive marker.

export interface TarEntry {
  /** Relative, `/`-separated, as the software manifest names paths (no trailing `/`). */
  readonly path: string;
  readonly type: 'file' | 'dir';
  readonly size: number;
  /** Permission bits (at most 0o777). */
  readonly mode: number;
}

export type TarEvent =
  | { readonly kind: 'entry'; readonly entry: TarEntry }
  /** File data, a view of the pushed chunk: use it before pushing the next one. */
  | { readonly kind: 'data'; readonly bytes: Uint8Array }
  | { readonly kind: 'entry-end'; readonly entry: TarEntry }
  /** The end-of-archive marker (two zero blocks) was read. */
  | { readonly kind: 'end' };

export interface TarReaderOptions {
  /** The archive's declared size in bytes: an entry that would not fit in it is refused at once. */
  readonly limit?: number;
}

const REFUSED_TYPES: ReadonlyMap<number, string> = new Map([
  [TYPEFLAG.hardLink, 'a hard link'],
  [TYPEFLAG.symlink, 'a symbolic link'],
  [TYPEFLAG.charDevice, 'a character device'],
  [TYPEFLAG.blockDevice, 'a block device'],
  [TYPEFLAG.fifo, 'a fifo'],
  [TYPEFLAG.contiguous, 'a contiguous file'],
  [TYPEFLAG.paxLocal, 'a pax extended header'],
  [TYPEFLAG.paxGlobal, 'a pax global header'],
  [TYPEFLAG.gnuLongName, 'a GNU long-name header'],
  [TYPEFLAG.gnuLongLink, 'a GNU long-link header'],
]);

const ONLY = 'release archives hold regular files and directories only (vigil-gateway release pack)';

type State = 'header' | 'data' | 'padding' | 'end1' | 'ended';

export class UstarReader {
  readonly #limit: number;
  #state: State = 'header';
  readonly #block = new Uint8Array(BLOCK);
  #filled = 0;
  /** Bytes consumed so far. */
  #offset = 0;
  #entry: TarEntry | undefined;
  #remaining = 0;
  #padding = 0;
  readonly #files = new Set<string>();
  readonly #dirs = new Set<string>();
  /** Directories only implied by a deeper path; an explicit entry for one may still come. */
  readonly #implied = new Set<string>();

  constructor(opts: TarReaderOptions = {}) {
    this.#limit = opts.limit ?? Number.MAX_SAFE_INTEGER;
  }

  /** Bytes consumed so far. */
  get offset(): number {
    return this.#offset;
  }

  get ended(): boolean {
    return this.#state === 'ended';
  }

  push(chunk: Uint8Array): TarEvent[] {
    if (this.#offset + chunk.length > this.#limit)
      throw new TarError(`the archive is longer than its declared ${this.#limit} bytes`);
    const events: TarEvent[] = [];
    let i = 0;
    while (i < chunk.length) {
      const left = chunk.length - i;
      if (this.#state === 'data') {
        const n = Math.min(this.#remaining, left);
        events.push({ kind: 'data', bytes: chunk.subarray(i, i + n) });
        i += n;
        this.#remaining -= n;
        if (this.#remaining === 0) this.#finishEntry(events);
      } else if (this.#state === 'padding') {
        const n = Math.min(this.#padding, left);
        i += n;
        this.#padding -= n;
        if (this.#padding === 0) this.#state = 'header';
      } else if (this.#state === 'ended') {
        // Writers pad the archive to a record (10 KiB for GNU tar) with zeros; nothing else may follow.
        for (; i < chunk.length; i++)
          if (chunk[i] !== 0)
            throw new TarError(`data after the end-of-archive marker at byte ${this.#offset + i}`);
      } else {
        const n = Math.min(BLOCK - this.#filled, left);
        this.#block.set(chunk.subarray(i, i + n), this.#filled);
        this.#filled += n;
        i += n;
        if (this.#filled === BLOCK) {
          this.#filled = 0;
          this.#onBlock(events, this.#offset + i);
        }
      }
    }
    this.#offset += chunk.length;
    return events;
  }

  /** The input is over: refuses an archive cut short. */
  end(): void {
    if (this.#state === 'ended') return;
    const where =
      this.#state === 'data' || this.#state === 'padding'
        ? `inside ${this.#entry?.path}`
        : 'before its end-of-archive marker (two zero blocks)';
    throw new TarError(`the archive is truncated: it ends after ${this.#offset} bytes, ${where}`);
  }

  #finishEntry(events: TarEvent[]): void {
    const entry = this.#entry!;
    events.push({ kind: 'entry-end', entry });
    this.#padding = paddingOf(entry.size);
    this.#state = this.#padding === 0 ? 'header' : 'padding';
  }

  #onBlock(events: TarEvent[], end: number): void {
    const block = this.#block;
    if (isZeroBlock(block)) {
      if (this.#state === 'end1') {
        this.#state = 'ended';
        events.push({ kind: 'end' });
      } else this.#state = 'end1';
      return;
    }
    if (this.#state === 'end1')
      throw new TarError(`a zero block inside the archive, before the header at byte ${end - BLOCK}`);
    const entry = this.#readHeader(block, end);
    this.#entry = entry;
    events.push({ kind: 'entry', entry });
    this.#remaining = entry.size;
    if (entry.size === 0) this.#finishEntry(events);
    else this.#state = 'data';
  }

  #readHeader(block: Uint8Array, end: number): TarEntry {
    const at = `the header at byte ${end - BLOCK}`;
    const h = (() => {
      try {
        return decodeHeader(block);
      } catch (e) {
        throw e instanceof TarError ? new TarError(`${at}: ${e.message}`) : e;
      }
    })();
    if (h.chksum !== headerChecksum(block))
      throw new TarError(`${at}: checksum ${h.chksum} does not match the header (${headerChecksum(block)})`);
    if (h.magic !== USTAR_MAGIC || h.version !== USTAR_VERSION) {
      const gnu = h.magic === 'ustar ' && h.version === ' \0';
      throw new TarError(
        `${at}: ${gnu ? 'GNU tar format' : `no ustar magic (${JSON.stringify(h.magic + h.version)})`}; ${ONLY}`,
      );
    }
    const raw = h.prefix === '' ? h.name : `${h.prefix}/${h.name}`;
    const refused = REFUSED_TYPES.get(h.typeflag);
    if (refused !== undefined)
      throw new TarError(
        `${JSON.stringify(raw)} is ${refused}${h.linkname ? ` to ${JSON.stringify(h.linkname)}` : ''}: ${ONLY}`,
      );
    const isDir = h.typeflag === TYPEFLAG.dir;
    if (!isDir && h.typeflag !== TYPEFLAG.file && h.typeflag !== TYPEFLAG.oldFile)
      throw new TarError(
        `${JSON.stringify(raw)} has the unknown type flag 0x${h.typeflag.toString(16)}: ${ONLY}`,
      );
    const path = isDir && raw.endsWith('/') ? raw.slice(0, -1) : raw;
    if (!isManifestPath(path))
      throw new TarError(
        `unsafe path ${JSON.stringify(raw)}: expected a relative /-separated path without empty, "." or ".." segments, backslashes or control characters`,
      );
    if (h.mode > 0o777)
      throw new TarError(`${path}: mode ${h.mode.toString(8)} has setuid, setgid or sticky bits`);
    if (isDir && h.size !== 0) throw new TarError(`directory ${path} has a size of ${h.size} bytes`);
    const needed = end + h.size + paddingOf(h.size) + 2 * BLOCK;
    if (needed > this.#limit)
      throw new TarError(
        `${path} (${h.size} bytes) does not fit in the archive's declared ${this.#limit} bytes`,
      );
    this.#place(path, isDir);
    return { path, type: isDir ? 'dir' : 'file', size: h.size, mode: h.mode };
  }

  /** Refuses an entry seen before, and one below a file; remembers the directories it implies. */
  #place(path: string, isDir: boolean): void {
    if (this.#files.has(path) || this.#dirs.has(path)) throw new TarError(`${path} is in the archive twice`);
    if (!isDir && this.#implied.has(path))
      throw new TarError(`${path} is a file, but earlier entries are inside it`);
    const segments = path.split('/');
    for (let n = 1; n < segments.length; n++) {
      const parent = segments.slice(0, n).join('/');
      if (this.#files.has(parent)) throw new TarError(`${path} is inside ${parent}, which is a file`);
      if (!this.#dirs.has(parent)) this.#implied.add(parent);
    }
    if (isDir) {
      this.#dirs.add(path);
      this.#implied.delete(path);
    } else this.#files.add(path);
  }
}

export interface TarMember extends TarEntry {
  /** A file's bytes. */
  readonly data?: Uint8Array;
}

/** Reads a whole archive in memory (small archives, tests). */
export function readUstar(bytes: Uint8Array, opts: TarReaderOptions = {}): TarMember[] {
  const reader = new UstarReader(opts);
  const members: TarMember[] = [];
  let chunks: Uint8Array[] = [];
  for (const e of reader.push(bytes)) {
    if (e.kind === 'data') chunks.push(e.bytes);
    else if (e.kind === 'entry-end') {
      members.push(
        e.entry.type === 'file' ? { ...e.entry, data: new Uint8Array(Buffer.concat(chunks)) } : e.entry,
      );
      chunks = [];
    }
  }
  reader.end();
  return members;
}
