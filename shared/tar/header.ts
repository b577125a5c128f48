// One POSIX ustar header block (IEEE Std 1003.1, pax "ustar Interchange Format"): 512 bytes of
// fixed-width fields. Encoding here is unchecked on purpose, so that tests can forge every
// malformed header a reader must refuse; the policy (what may be written, what is accepted) lives
// in writer.ts and reader.ts.

export const BLOCK = 512;

/** The largest size an 11-digit octal field holds (8 GiB - 1); base-256 sizes are a GNU extension. */
export const MAX_ENTRY_SIZE = 8 ** 11 - 1;

export class TarError extends Error {
  override readonly name = 'TarError';
}

/** Type flags as ustar defines them; only `file` and `dir` are ever accepted (reader.ts). */
export const TYPEFLAG = {
  file: 0x30, // '0'
  oldFile: 0x00, // NUL: a regular file in pre-POSIX archives
  hardLink: 0x31,
  symlink: 0x32,
  charDevice: 0x33,
  blockDevice: 0x34,
  dir: 0x35,
  fifo: 0x36,
  contiguous: 0x37,
  paxLocal: 0x78, // 'x'
  paxGlobal: 0x67, // 'g'
  gnuLongName: 0x4c, // 'L'
  gnuLongLink: 0x4b, // 'K'
} as const;

/** Offset and width of each field (the layout is fixed by POSIX). */
const FIELD = {
  name: [0, 100],
  mode: [100, 8],
  uid: [108, 8],
  gid: [116, 8],
  size: [124, 12],
  mtime: [136, 12],
  chksum: [148, 8],
  typeflag: [156, 1],
  linkname: [157, 100],
  magic: [257, 6],
  version: [263, 2],
  uname: [265, 32],
  gname: [297, 32],
  devmajor: [329, 8],
  devminor: [337, 8],
  prefix: [345, 155],
} as const;

export const USTAR_MAGIC = 'ustar\0';
export const USTAR_VERSION = '00';

/** Every field of a header as raw values; strings are UTF-8, numbers are written in octal. */
export interface HeaderFields {
  readonly name: string;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly mtime: number;
  readonly typeflag: number;
  readonly linkname: string;
  readonly magic: string;
  readonly version: string;
  readonly uname: string;
  readonly gname: string;
  readonly devmajor: number;
  readonly devminor: number;
  readonly prefix: string;
}

const utf8 = new TextEncoder();

function putText(block: Uint8Array, [at, width]: readonly [number, number], s: string): void {
  const b = utf8.encode(s);
  if (b.length > width) throw new TarError(`tar header: ${JSON.stringify(s)} is over ${width} bytes`);
  block.set(b, at);
}

/** Octal digits, zero-padded, then one NUL: the form GNU tar and bsdtar write. */
function putOctal(block: Uint8Array, [at, width]: readonly [number, number], n: number): void {
  const digits = n.toString(8).padStart(width - 1, '0');
  if (!Number.isSafeInteger(n) || n < 0 || digits.length > width - 1)
    throw new TarError(`tar header: ${n} does not fit ${width - 1} octal digits`);
  putText(block, [at, width - 1], digits);
}

/** Sum of the header's bytes with the checksum field counted as eight spaces. */
export function headerChecksum(block: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
  return sum;
}

/** Encodes a header with a correct checksum (`chksum` overrides it, for tests of a wrong one). */
export function encodeHeader(f: HeaderFields, chksum?: number): Uint8Array {
  const block = new Uint8Array(BLOCK);
  putText(block, FIELD.name, f.name);
  putOctal(block, FIELD.mode, f.mode);
  putOctal(block, FIELD.uid, f.uid);
  putOctal(block, FIELD.gid, f.gid);
  putOctal(block, FIELD.size, f.size);
  putOctal(block, FIELD.mtime, f.mtime);
  block[FIELD.typeflag[0]] = f.typeflag;
  putText(block, FIELD.linkname, f.linkname);
  putText(block, FIELD.magic, f.magic);
  putText(block, FIELD.version, f.version);
  putText(block, FIELD.uname, f.uname);
  putText(block, FIELD.gname, f.gname);
  putOctal(block, FIELD.devmajor, f.devmajor);
  putOctal(block, FIELD.devminor, f.devminor);
  putText(block, FIELD.prefix, f.prefix);
  // Six digits, NUL, space: the historical form every reader accepts.
  const sum = (chksum ?? headerChecksum(block)).toString(8).padStart(6, '0');
  putText(block, [148, 8], `${sum}\0 `);
  return block;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** A header as read: text fields up to their first NUL, numeric fields parsed (see `octal`). */
export interface RawHeader {
  readonly name: string;
  readonly mode: number;
  readonly size: number;
  readonly chksum: number;
  readonly typeflag: number;
  readonly linkname: string;
  readonly magic: string;
  readonly version: string;
  readonly prefix: string;
}

function text(block: Uint8Array, [at, width]: readonly [number, number], what: string): string {
  const field = block.subarray(at, at + width);
  const nul = field.indexOf(0);
  try {
    return strictUtf8.decode(nul < 0 ? field : field.subarray(0, nul));
  } catch {
    throw new TarError(`tar header: the ${what} field is not UTF-8`);
  }
}

/**
 * An octal field: optional leading spaces, octal digits, then only NULs or spaces. The base-256
 * form (high bit set, a GNU extension for large values) is refused like every other extension.
 */
function octal(block: Uint8Array, [at, width]: readonly [number, number], what: string): number {
  const field = block.subarray(at, at + width);
  if ((field[0]! & 0x80) !== 0)
    throw new TarError(`tar header: the ${what} field is base-256 (a GNU extension), not octal`);
  const s = String.fromCharCode(...field);
  const m = /^ *([0-7]+)[\0 ]*$/.exec(s);
  if (!m) throw new TarError(`tar header: the ${what} field ${JSON.stringify(s)} is not an octal number`);
  return Number.parseInt(m[1]!, 8);
}

export function decodeHeader(block: Uint8Array): RawHeader {
  return {
    name: text(block, FIELD.name, 'name'),
    mode: octal(block, FIELD.mode, 'mode'),
    size: octal(block, FIELD.size, 'size'),
    chksum: octal(block, FIELD.chksum, 'checksum'),
    typeflag: block[FIELD.typeflag[0]]!,
    linkname: text(block, FIELD.linkname, 'linkname'),
    magic: String.fromCharCode(...block.subarray(FIELD.magic[0], FIELD.magic[0] + FIELD.magic[1])),
    version: String.fromCharCode(...block.subarray(FIELD.version[0], FIELD.version[0] + FIELD.version[1])),
    prefix: text(block, FIELD.prefix, 'prefix'),
  };
}

export function isZeroBlock(block: Uint8Array): boolean {
  for (let i = 0; i < block.length; i++) if (block[i] !== 0) return false;
  return true;
}

/** Zero bytes that bring `size` up to a whole number of blocks. */
export function paddingOf(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}
