import type { ReleaseManifestRecord } from '../releases/model.ts';

// Imported release manifests ↔ rows (tables.ts RELEASE_MANIFESTS).

export interface ReleaseManifestRow {
  name: string;
  version: string;
  seq: number;
  digest: string;
  kid: string;
  manifest: Buffer;
  artifact_sha256: string;
  artifact_size: number;
  artifact_path: string;
  imported_at: number;
}

export function releaseManifestToRow(r: ReleaseManifestRecord): ReleaseManifestRow {
  return {
    name: r.name,
    version: r.version,
    seq: r.seq,
    digest: r.digest,
    kid: r.kid,
    manifest: Buffer.from(r.manifest),
    artifact_sha256: r.artifact.sha256,
    artifact_size: r.artifact.size,
    artifact_path: r.artifact.path,
    imported_at: r.importedAt,
  };
}

export function releaseManifestFromRow(row: ReleaseManifestRow): ReleaseManifestRecord {
  return {
    name: row.name,
    version: row.version,
    seq: row.seq,
    digest: row.digest,
    kid: row.kid,
    manifest: new Uint8Array(row.manifest),
    artifact: { sha256: row.artifact_sha256, size: row.artifact_size, path: row.artifact_path },
    importedAt: row.imported_at,
  };
}
