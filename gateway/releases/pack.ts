import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import * as fs from 'node:fs';
import { type FileHandle, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type ReleaseManifest,
  type SignedRelease,
  signRelease,
  trustedKey,
} from '../../shared/protocol/release-manifest.ts';
import { buildManifest, formatManifest, manifestDigest } from '../../shared/protocol/software-manifest.ts';
import { bundleHead, bundleTail } from '../../shared/release/bundle.ts';
import { archiveOrder, END_OF_ARCHIVE, entryHeader, entryPadding } from '../../shared/tar/writer.ts';
import { readBundleFile } from './read-bundle.ts';

// `vigil-gateway release pack`: from a tree on a build machine to a signed bundle, with no gateway
// involved. The tree is measured with the software manifest (the digest devices will extend), the
// archive holds exactly what the manifest covers (its regular files and the directories above
// them; empty directories carry nothing a device would measure and are left out), the manifest
// is signed, and the bundle is read back with the same checks a gateway applies at import before
// it is renamed into place: a tree that changed while it was packed never leaves as a bundle.

export interface PackOptions {
  /** The release private key (Ed25519 or P-256). */
  readonly key: KeyObject;
  readonly name: string;
  readonly version: string;
  readonly seq: number;
  readonly tree: string;
  readonly out: string;
  readonly expires?: number;
  readonly healthWindowMs?: number;
}

export interface Packed {
  readonly release: SignedRelease;
  readonly files: number;
  readonly bundleBytes: number;
}

const COPY_CHUNK = 64 * 1024;

/** Streams a file into `out`, hashing it; its size must still be `size`. */
async function copyFile(out: FileHandle, path: string, size: number, hash?: ReturnType<typeof createHash>) {
  const input = await open(path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    const buf = Buffer.alloc(COPY_CHUNK);
    let copied = 0;
    for (;;) {
      const { bytesRead } = await input.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      copied += bytesRead;
      if (copied > size) break;
      const bytes = buf.subarray(0, bytesRead);
      hash?.update(bytes);
      await out.write(bytes);
    }
    if (copied !== size)
      throw new Error(
        `${path} changed while it was packed (${size} bytes, then ${copied}): pack a tree nothing writes to`,
      );
  } finally {
    await input.close();
  }
}

/** Writes the deterministic archive of the manifest's files; returns its size and SHA-256. */
async function writeArtifact(tree: string, files: readonly string[], out: string) {
  const dirs = new Set<string>();
  for (const f of files) {
    const parts = f.split('/');
    for (let n = 1; n < parts.length; n++) dirs.add(parts.slice(0, n).join('/'));
  }
  const entries = archiveOrder([
    ...[...dirs].map((path) => ({ path, type: 'dir' as const, size: 0 })),
    ...files.map((path) => {
      const st = fs.lstatSync(join(tree, path));
      return { path, type: 'file' as const, size: st.size, executable: (st.mode & 0o100) !== 0 };
    }),
  ]);
  const hash = createHash('sha256');
  const fh = await open(out, 'wx', 0o644);
  let size = 0;
  const put = async (b: Uint8Array) => {
    hash.update(b);
    size += b.length;
    await fh.write(b);
  };
  try {
    for (const e of entries) {
      await put(entryHeader(e));
      if (e.type === 'file') {
        await copyFile(fh, join(tree, e.path), e.size, hash);
        size += e.size;
        await put(entryPadding(e.size));
      }
    }
    await put(END_OF_ARCHIVE);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return { size, sha256: new Uint8Array(hash.digest()) };
}

export async function packRelease(o: PackOptions): Promise<Packed> {
  const tree = buildManifest(fs, o.tree, { name: o.name, version: o.version });
  const artifactTmp = `${o.out}.artifact-${process.pid}.tmp`;
  const bundleTmp = `${o.out}.${process.pid}.tmp`;
  try {
    const artifact = await writeArtifact(
      o.tree,
      tree.files.map((f) => f.path),
      artifactTmp,
    );
    const manifest: ReleaseManifest = {
      name: o.name,
      version: o.version,
      seq: o.seq,
      digest: manifestDigest(formatManifest(tree)),
      artifact: { size: artifact.size, sha256: artifact.sha256, format: 'tar' },
      ...(o.expires !== undefined && { expires: o.expires }),
      ...(o.healthWindowMs !== undefined && { health: { windowMs: o.healthWindowMs } }),
    };
    const signed = signRelease(o.key, manifest);
    const fh = await open(bundleTmp, 'wx', 0o644);
    try {
      await fh.write(bundleHead(signed, artifact.size));
      await copyFile(fh, artifactTmp, artifact.size);
      await fh.write(bundleTail(artifact.size));
      await fh.sync();
    } finally {
      await fh.close();
    }
    const check = await readBundleFile(bundleTmp, { trusted: [trustedKey(createPublicKey(o.key))] }).catch(
      (e: Error) => {
        throw new Error(
          `the bundle does not verify once packed (did ${o.tree} change meanwhile?): ${e.message}`,
        );
      },
    );
    await rename(bundleTmp, o.out);
    return { release: check.release, files: check.files, bundleBytes: fs.statSync(o.out).size };
  } finally {
    await rm(artifactTmp, { force: true });
    await rm(bundleTmp, { force: true });
  }
}
