import { createHash, type Hash } from 'node:crypto';
import { formatManifest, type ManifestFile, manifestDigest } from '../protocol/software-manifest.ts';
import type { TarEvent } from '../tar/reader.ts';

// The software manifest of the tree an archive holds, computed from the archive as it streams by,
// without unpacking it: the gateway checks at import that a release's artifact really is the tree
// its manifest's `digest` names, and `release verify` says so before anything is shipped. The
// device measures the unpacked tree with buildManifest; both give the same text for the same tree
// (regular files only, directories contribute nothing of their own).

export class TreeMeasure {
  readonly #files: ManifestFile[] = [];
  #hash: Hash | undefined;

  /** Feed every event of a UstarReader, in order. */
  add(e: TarEvent): void {
    if (e.kind === 'entry' && e.entry.type === 'file') this.#hash = createHash('sha256');
    else if (e.kind === 'data') this.#hash?.update(e.bytes);
    else if (e.kind === 'entry-end' && e.entry.type === 'file') {
      this.#files.push({ path: e.entry.path, sha256: this.#hash!.digest('hex') });
      this.#hash = undefined;
    }
  }

  get fileCount(): number {
    return this.#files.length;
  }

  /** The canonical manifest text of the tree under this name and version. */
  manifest(name: string, version: string): string {
    return formatManifest({ name, version, files: this.#files });
  }

  digest(name: string, version: string): Uint8Array {
    return manifestDigest(this.manifest(name, version));
  }
}
