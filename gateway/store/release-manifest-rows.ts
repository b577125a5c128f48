import type Database from 'better-sqlite3';
import type { ReleaseManifestRecord } from '../releases/model.ts';

// Imported release manifests ↔ SQLite (migration 3), apart from rows.ts so that the rollout work
// moves to another store engine as one piece.

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

export function prepareReleaseManifestStatements(db: Database.Database) {
  return {
    // A manifest is immutable once imported: a second insert of the same (name, seq) is refused by
    // the primary key, never merged.
    insert: db.prepare<[ReleaseManifestRow]>(
      `INSERT INTO release_manifests (name, version, seq, digest, kid, manifest, artifact_sha256,
         artifact_size, artifact_path, imported_at)
       VALUES (@name, @version, @seq, @digest, @kid, @manifest, @artifact_sha256, @artifact_size,
         @artifact_path, @imported_at)`,
    ),
    all: db.prepare<[], ReleaseManifestRow>('SELECT * FROM release_manifests ORDER BY name, seq'),
    ofName: db.prepare<[string], ReleaseManifestRow>(
      'SELECT * FROM release_manifests WHERE name = ? ORDER BY seq',
    ),
    one: db.prepare<[string, number], ReleaseManifestRow>(
      'SELECT * FROM release_manifests WHERE name = ? AND seq = ?',
    ),
  };
}
