import { MAX_RELEASE_MANIFEST_BYTES } from '../protocol/messages.ts';
import { TarError } from '../tar/header.ts';
import { type TarEntry, UstarReader } from '../tar/reader.ts';
import { END_OF_ARCHIVE, entryHeader, entryPadding } from '../tar/writer.ts';
import { concat } from '../tpm/bytes.ts';

// A release bundle: one file that carries a release from the build pipeline to a gateway. It is
// itself a ustar archive of exactly two regular files, in this order:
//
//   release.cose   the signed release manifest (PROTOCOL.md §6.1)
//   release.tar    the artifact, byte for byte what the manifest's `artifact` describes
//
// Why a tar: `tar -tvf app.vigil` lists it and `tar -xOf app.vigil release.cose` extracts the
// manifest with tools every operator has; and the manifest comes first, so a reader checks the
// signature before the first artifact byte and then streams the artifact once, hashing, parsing
// and copying it in the same pass, however large it is. The names sort in that order too, so the
// bundle obeys the same deterministic-archive rules as the artifact.

export const BUNDLE_MANIFEST = 'release.cose';
export const BUNDLE_ARTIFACT = 'release.tar';

/** Everything before the artifact's bytes: manifest header and data, then the artifact's header. */
export function bundleHead(manifest: Uint8Array, artifactSize: number): Uint8Array {
  return concat(
    entryHeader({ path: BUNDLE_MANIFEST, type: 'file', size: manifest.length }),
    manifest,
    entryPadding(manifest.length),
    entryHeader({ path: BUNDLE_ARTIFACT, type: 'file', size: artifactSize }),
  );
}

/** Everything after the artifact's bytes. */
export function bundleTail(artifactSize: number): Uint8Array {
  return concat(entryPadding(artifactSize), END_OF_ARCHIVE);
}

export type BundleEvent =
  /** The whole signed manifest: check it before using what follows. */
  | { readonly kind: 'manifest'; readonly bytes: Uint8Array }
  | { readonly kind: 'artifact-start'; readonly size: number }
  /** Artifact bytes, a view of the pushed chunk. */
  | { readonly kind: 'artifact'; readonly bytes: Uint8Array }
  | { readonly kind: 'end' };

const NOT_A_BUNDLE = 'not a release bundle (release.cose then release.tar, from vigil-gateway release pack)';

/** Reads a bundle as it streams in; pure, like UstarReader, whose checks it applies. */
export class BundleReader {
  readonly #tar = new UstarReader();
  #member: 'manifest' | 'artifact' | undefined;
  #seen = 0;
  #manifest: Uint8Array[] = [];

  push(chunk: Uint8Array): BundleEvent[] {
    const out: BundleEvent[] = [];
    for (const e of this.#tar.push(chunk)) {
      if (e.kind === 'entry') this.#start(e.entry, out);
      else if (e.kind === 'data') {
        if (this.#member === 'manifest') this.#manifest.push(e.bytes.slice());
        else out.push({ kind: 'artifact', bytes: e.bytes });
      } else if (e.kind === 'entry-end') {
        if (this.#member === 'manifest')
          out.push({ kind: 'manifest', bytes: new Uint8Array(Buffer.concat(this.#manifest)) });
        this.#member = undefined;
      } else {
        if (this.#seen !== 2) throw new TarError(`${NOT_A_BUNDLE}: it holds ${this.#seen} member(s)`);
        out.push({ kind: 'end' });
      }
    }
    return out;
  }

  /** The input is over: refuses a bundle cut short. */
  end(): void {
    this.#tar.end();
  }

  #start(entry: TarEntry, out: BundleEvent[]): void {
    const expected = this.#seen === 0 ? BUNDLE_MANIFEST : this.#seen === 1 ? BUNDLE_ARTIFACT : undefined;
    this.#seen++;
    if (entry.type !== 'file' || entry.path !== expected)
      throw new TarError(
        `${NOT_A_BUNDLE}: member ${this.#seen} is ${entry.type} ${JSON.stringify(entry.path)}`,
      );
    if (expected === BUNDLE_MANIFEST) {
      if (entry.size > MAX_RELEASE_MANIFEST_BYTES)
        throw new TarError(
          `${NOT_A_BUNDLE}: ${BUNDLE_MANIFEST} is ${entry.size} bytes, a manifest is under ${MAX_RELEASE_MANIFEST_BYTES}`,
        );
      this.#member = 'manifest';
    } else {
      this.#member = 'artifact';
      out.push({ kind: 'artifact-start', size: entry.size });
    }
  }
}
