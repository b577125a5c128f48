import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { open, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { checkNotExpired, type SignedRelease } from '../../shared/protocol/release-manifest.ts';
import { equalBytes, toHex } from '../../shared/tpm/bytes.ts';
import type { Release } from '../model.ts';
import type { Store } from '../store/store.ts';
import { ARTIFACTS_DIR, artifactStoreOf, syncDir } from './artifact-files.ts';
import { loadReleaseKeys } from './keys.ts';
import type { ReleaseManifestRecord } from './model.ts';
import { readBundleFile } from './read-bundle.ts';

// `vigil-gateway release import`: a bundle enters the gateway directory. Its manifest must verify
// with a key in DIR/release-keys/, its artifact must be exactly what the manifest says (size,
// SHA-256, a safe archive whose tree measures to `digest`), and it must not contradict a release
// already known. Then the artifact is kept content-addressed under DIR/artifacts/, the signed
// manifest goes into the store (with the artifact too when the store is shared by several
// gateways), and `(name, version, digest)` becomes a reference value. One pass over the bundle:
// the artifact is checked while it is copied, and renamed into place only when every check passed.

/** A bundle that contradicts what the gateway already holds. */
export class ImportConflictError extends Error {
  override readonly name = 'ImportConflictError';
}

export type ImportVerdict =
  | { readonly kind: 'new' }
  | { readonly kind: 'same'; readonly record: ReleaseManifestRecord }
  | { readonly kind: 'conflict'; readonly detail: string };

/**
 * Whether `incoming` may join what is imported and registered: a seq and a version each name one
 * release of a software, so the same seq or version with other bytes is a conflict; the very same
 * manifest again is no change.
 */
export function importVerdict(
  incoming: SignedRelease,
  imported: readonly ReleaseManifestRecord[],
  registered: readonly Release[],
): ImportVerdict {
  const m = incoming.manifest;
  const digest = toHex(m.digest);
  for (const r of imported) {
    if (r.name !== m.name || (r.seq !== m.seq && r.version !== m.version)) continue;
    if (r.seq === m.seq && equalBytes(r.manifest, incoming.bytes)) return { kind: 'same', record: r };
    return {
      kind: 'conflict',
      detail: `${m.name} ${m.version} seq ${m.seq} clashes with the imported ${r.name} ${r.version} seq ${r.seq} (digest ${r.digest}): a seq and a version each name one release; pack this one with a new --seq and --version`,
    };
  }
  const other = registered.find((r) => r.name === m.name && r.version === m.version && r.digest !== digest);
  if (other)
    return {
      kind: 'conflict',
      detail: `${m.name} ${m.version} is registered with digest ${other.digest}, this release has ${digest}: remove it first (vigil-gateway release remove ${m.name} ${m.version}) if it was a mistake`,
    };
  return { kind: 'new' };
}

export interface ImportOptions {
  /** The gateway directory (absolute). */
  readonly dir: string;
  readonly bundle: string;
  readonly store: Pick<Store, 'releaseManifests' | 'addReleaseManifest' | 'releases' | 'addRelease'>;
  readonly now: number;
}

export interface Imported {
  readonly release: SignedRelease;
  readonly record: ReleaseManifestRecord;
  readonly files: number;
  /** The same manifest had been imported before: nothing changed. */
  readonly already: boolean;
}

export async function importBundle(o: ImportOptions): Promise<Imported> {
  const { keys, folder } = loadReleaseKeys(o.dir);
  if (keys.length === 0)
    throw new Error(
      `no release keys in ${folder}: copy the public key that \`vigil-gateway release keygen\` printed there (one .pem per key), then import again`,
    );
  const artifacts = join(o.dir, ARTIFACTS_DIR);
  mkdirSync(artifacts, { recursive: true, mode: 0o750 });
  const tmp = join(artifacts, `.import-${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
  let same: ReleaseManifestRecord | undefined;
  // Read before the bundle: the check runs as soon as its manifest is read, before any artifact byte.
  const [imported, registered] = await Promise.all([o.store.releaseManifests(), o.store.releases()]);
  const fh = await open(tmp, 'wx', 0o640);
  try {
    const contents = await readBundleFile(o.bundle, {
      trusted: keys,
      onRelease: (r) => {
        checkNotExpired(r.manifest, o.now);
        const verdict = importVerdict(
          r,
          imported.filter((m) => m.name === r.manifest.name),
          registered,
        );
        if (verdict.kind === 'conflict') throw new ImportConflictError(verdict.detail);
        if (verdict.kind === 'same') same = verdict.record;
      },
      sink: async (bytes) => {
        await fh.write(bytes);
      },
    });
    await fh.sync();
    await fh.close();
    const m = contents.release.manifest;
    const sha256 = toHex(m.artifact.sha256);
    const path = join(ARTIFACTS_DIR, `${sha256}.tar`);
    // Content-addressed: a file already there under this name holds these very bytes.
    if (await stat(join(o.dir, path)).catch(() => undefined)) await rm(tmp);
    else {
      await rename(tmp, join(o.dir, path));
      syncDir(artifacts);
    }
    // Imported before: the reference value is registered again (it may have been removed since).
    const record: ReleaseManifestRecord = same ?? {
      name: m.name,
      version: m.version,
      seq: m.seq,
      digest: toHex(m.digest),
      kid: toHex(contents.release.kid),
      manifest: contents.release.bytes,
      artifact: { sha256, size: m.artifact.size, path },
      importedAt: o.now,
    };
    // Several gateways: the artifact is in the shared store before its release is, so that any
    // gateway that sees the release can serve it.
    await artifactStoreOf(o.store)?.putArtifact(sha256, m.artifact.size, join(o.dir, path));
    if (!same) o.store.addReleaseManifest(record);
    o.store.addRelease({ name: m.name, version: m.version, digest: record.digest, addedAt: o.now });
    return { release: contents.release, record, files: contents.files, already: same !== undefined };
  } finally {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
  }
}
