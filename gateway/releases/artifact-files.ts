import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync } from 'node:fs';
import { open, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ReleaseManifestRecord } from './model.ts';

// Where the rollout engine reads a release's artifact: `DIR/artifacts/<sha256>.tar`, put there by
// `release import` on the gateway whose host imported the bundle. With several gateways the
// artifact is kept in the shared store as well (at import), and a gateway that lacks the file
// copies it from there on first use: written aside, its size and SHA-256 checked against the
// signed manifest's, renamed into place only then, as an import does. A copy that does not match
// is refused, never served.

export const ARTIFACTS_DIR = 'artifacts';

/** An artifact as the shared store keeps it. */
export interface StoredArtifact {
  readonly size: number;
  /** The bytes in order. */
  chunks(): AsyncIterable<Uint8Array>;
}

/** A store that keeps artifacts for every gateway (the PostgreSQL store). */
export interface ArtifactStore {
  /** Keeps the artifact at `file` (checked by the import), once per SHA-256. */
  putArtifact(sha256: string, size: number, file: string): Promise<void>;
  readArtifact(sha256: string): Promise<StoredArtifact | undefined>;
}

/** The store's artifact side, when it has one. */
export function artifactStoreOf(store: object): ArtifactStore | undefined {
  const s = store as Partial<ArtifactStore>;
  return typeof s.putArtifact === 'function' && typeof s.readArtifact === 'function'
    ? (s as ArtifactStore)
    : undefined;
}

export function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export type Located =
  | { readonly ok: true; readonly file: string }
  | { readonly ok: false; readonly detail: string };

export class ArtifactFiles {
  readonly #copying = new Map<string, Promise<Located>>();
  /** Files found or copied, by SHA-256: a serve of the next chunk need not look again. */
  readonly #found = new Map<string, string>();

  constructor(
    /** The gateway directory: artifact paths in release records are relative to it. */
    private readonly dir: string,
    private readonly shared?: ArtifactStore,
  ) {}

  /** The artifact's file, when an earlier locate found it. */
  known(artifact: ReleaseManifestRecord['artifact']): string | undefined {
    return this.#found.get(artifact.sha256);
  }

  /** The artifact's file here, copied from the shared store first when this gateway lacks it. */
  locate(artifact: ReleaseManifestRecord['artifact']): Promise<Located> {
    const copying = this.#copying.get(artifact.sha256);
    if (copying) return copying;
    const p = this.#locate(artifact)
      .then((l) => {
        if (l.ok) this.#found.set(artifact.sha256, l.file);
        return l;
      })
      .finally(() => this.#copying.delete(artifact.sha256));
    this.#copying.set(artifact.sha256, p);
    return p;
  }

  async #locate(artifact: ReleaseManifestRecord['artifact']): Promise<Located> {
    const file = join(this.dir, artifact.path);
    const size = await stat(file).then(
      (s) => s.size,
      () => undefined,
    );
    if (size === artifact.size) return { ok: true, file };
    const here = `${size === undefined ? 'missing' : `${size} bytes, not ${artifact.size}`} at ${file}`;
    const stored = await this.shared?.readArtifact(artifact.sha256);
    if (!stored)
      return {
        ok: false,
        detail: `the artifact is ${here}${this.shared ? ', and the shared store does not hold it' : ''}: import the bundle again`,
      };
    await this.#copy(artifact, stored, file);
    return { ok: true, file };
  }

  async #copy(
    artifact: ReleaseManifestRecord['artifact'],
    stored: StoredArtifact,
    file: string,
  ): Promise<void> {
    const folder = join(this.dir, ARTIFACTS_DIR);
    mkdirSync(folder, { recursive: true, mode: 0o750 });
    const tmp = join(folder, `.copy-${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
    const fh = await open(tmp, 'wx', 0o640);
    try {
      const hash = createHash('sha256');
      let size = 0;
      for await (const chunk of stored.chunks()) {
        await fh.write(chunk);
        hash.update(chunk);
        size += chunk.length;
      }
      await fh.sync();
      const sha256 = hash.digest('hex');
      if (size !== artifact.size || sha256 !== artifact.sha256)
        throw new Error(
          `the shared store's copy of artifact ${artifact.sha256} is ${size} bytes with SHA-256 ${sha256}, not the ${artifact.size} bytes the release names: import the bundle again`,
        );
      await fh.close();
      await rename(tmp, file);
      syncDir(folder);
    } finally {
      await fh.close().catch(() => undefined);
      await rm(tmp, { force: true });
    }
  }
}
