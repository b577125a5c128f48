import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import {
  openRelease,
  ReleaseError,
  type SignedRelease,
  type TrustedKey,
} from '../../shared/protocol/release-manifest.ts';
import { BundleReader } from '../../shared/release/bundle.ts';
import { TreeMeasure } from '../../shared/release/tree-measure.ts';
import { TarError } from '../../shared/tar/header.ts';
import { UstarReader } from '../../shared/tar/reader.ts';
import { equalBytes, toHex } from '../../shared/tpm/bytes.ts';

// Reads a release bundle file once, start to end: the manifest's signature is checked before the
// first artifact byte is used, then the artifact streams through its SHA-256, the archive checks
// (reader.ts) and the tree measure, and to `sink` if one is given. Memory stays at one chunk
// whatever the artifact's size. Everything refused is a ReleaseError with the §6.3 code a device
// would report for it.

export interface BundleContents {
  readonly release: SignedRelease;
  /** Regular files in the artifact's tree. */
  readonly files: number;
}

export interface ReadBundleOptions {
  readonly trusted: readonly TrustedKey[];
  /** Sees the verified release before any artifact byte; throws to refuse it (expired, a conflict). */
  readonly onRelease?: (r: SignedRelease) => void;
  /** Receives the artifact's bytes in order, once the manifest checked out. */
  readonly sink?: (bytes: Uint8Array) => Promise<void>;
}

const invalid = (detail: string) => new ReleaseError('artifact-invalid', detail);

export async function readBundleFile(path: string, opts: ReadBundleOptions): Promise<BundleContents> {
  const bundle = new BundleReader();
  const hash = createHash('sha256');
  const measure = new TreeMeasure();
  let release: SignedRelease | undefined;
  let artifact: UstarReader | undefined;
  const inArtifact = (f: () => void) => {
    try {
      f();
    } catch (e) {
      throw e instanceof TarError ? invalid(`the artifact: ${e.message}`) : e;
    }
  };
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 64 * 1024 })) {
      for (const e of bundle.push(chunk as Buffer)) {
        if (e.kind === 'manifest') {
          release = openRelease(e.bytes, opts.trusted);
          opts.onRelease?.(release);
        } else if (e.kind === 'artifact-start') {
          const declared = release!.manifest.artifact.size;
          if (e.size !== declared)
            throw invalid(`the artifact is ${e.size} bytes, the manifest says ${declared}`);
          artifact = new UstarReader({ limit: declared });
        } else if (e.kind === 'artifact') {
          hash.update(e.bytes);
          inArtifact(() => {
            for (const t of artifact!.push(e.bytes)) measure.add(t);
          });
          await opts.sink?.(e.bytes);
        }
      }
    }
    bundle.end();
  } catch (e) {
    if (e instanceof TarError)
      throw new ReleaseError('manifest-invalid', `${path} is not a release bundle: ${e.message}`);
    throw e;
  }
  const m = release!.manifest;
  inArtifact(() => artifact!.end());
  const sha256 = new Uint8Array(hash.digest());
  if (!equalBytes(sha256, m.artifact.sha256))
    throw invalid(
      `the artifact's SHA-256 is ${toHex(sha256)}, the manifest says ${toHex(m.artifact.sha256)}`,
    );
  const digest = measure.digest(m.name, m.version);
  if (!equalBytes(digest, m.digest))
    throw invalid(
      `the artifact's tree measures to ${toHex(digest)} as ${m.name} ${m.version}, the manifest says ${toHex(m.digest)}`,
    );
  return { release: release!, files: measure.fileCount };
}
