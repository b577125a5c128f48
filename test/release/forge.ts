import {
  BLOCK,
  encodeHeader,
  type HeaderFields,
  headerChecksum,
  paddingOf,
  TYPEFLAG,
} from '../../shared/tar/header.ts';
import { END_OF_ARCHIVE, FIXED_FIELDS } from '../../shared/tar/writer.ts';

// Hand-made tar archives, for the ones a careful writer never makes: links, devices, extension
// headers, unsafe paths, bad checksums. Each member is a header (any fields) and its data.

export interface ForgedMember {
  readonly header: Partial<HeaderFields> & { readonly name: string };
  readonly data?: Uint8Array;
  /** Write this checksum instead of the right one. */
  readonly chksum?: number;
}

export function forgeHeader(m: ForgedMember): Uint8Array {
  const size = m.header.size ?? m.data?.length ?? 0;
  return encodeHeader(
    {
      ...FIXED_FIELDS,
      mode: 0o644,
      typeflag: TYPEFLAG.file,
      prefix: '',
      ...m.header,
      size,
    },
    m.chksum,
  );
}

export function forge(members: readonly ForgedMember[], end: Uint8Array = END_OF_ARCHIVE): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const m of members) {
    parts.push(forgeHeader(m));
    if (m.data) parts.push(m.data, new Uint8Array(paddingOf(m.data.length)));
  }
  parts.push(end);
  return new Uint8Array(Buffer.concat(parts));
}

/** Writes the right checksum into a header patched by hand. */
export function rechecksum(block: Uint8Array): Uint8Array {
  const sum = `${headerChecksum(block).toString(8).padStart(6, '0')}\0 `;
  for (let i = 0; i < 8; i++) block[148 + i] = sum.charCodeAt(i);
  return block;
}

export const text = (s: string) => new TextEncoder().encode(s);
export { BLOCK, TYPEFLAG };
