import { existsSync, renameSync, rmSync, statSync } from 'node:fs';
import Database from 'better-sqlite3';
import { APPLICATION_ID, SCHEMA_VERSION } from './migrations.ts';

// A SQLite store as a file: its online backup, what a file holds (is it a Vigil store, of which
// schema, intact?), and a restore that never writes into a database in use. The running
// gateway backs up through SqliteStore.backup (the same function, on its own connection).

/** Tables every Vigil store has had since schema version 1. */
const CORE_TABLES = ['devices', 'rounds', 'posture_events', 'allowlist', 'releases', 'batches'];

export interface StoreFileInfo {
  readonly file: string;
  readonly bytes: number;
  readonly schemaVersion: number;
  readonly devices: number;
  readonly enrolled: number;
  readonly rounds: number;
  readonly releases: number;
}

/** A file that is not a Vigil store this gateway can use; the message says why and what to do. */
export class StoreFileError extends Error {
  override readonly name = 'StoreFileError';
}

/**
 * A consistent copy of `db` in `dest` (SQLite's online backup API: writers may go on meanwhile),
 * written beside it and renamed into place, so a partial copy never has the final name.
 */
export async function backupDatabase(db: Database.Database, dest: string): Promise<void> {
  if (existsSync(dest)) throw new StoreFileError(`${dest} exists: choose a new file name for the backup`);
  const partial = `${dest}.partial`;
  try {
    await db.backup(partial);
    renameSync(partial, dest);
  } catch (err) {
    rmSync(partial, { force: true });
    throw err;
  }
}

/** What `file` holds; throws StoreFileError when it is not an intact Vigil store of a supported schema. */
export function inspectStoreFile(file: string): StoreFileInfo {
  if (!existsSync(file)) throw new StoreFileError(`${file}: no such file`);
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
  } catch (e) {
    throw new StoreFileError(`${file}: cannot be opened as SQLite (${(e as Error).message})`);
  }
  try {
    let appId: number;
    let version: number;
    let tables: Set<string>;
    try {
      appId = db.pragma('application_id', { simple: true }) as number;
      version = db.pragma('user_version', { simple: true }) as number;
      tables = new Set(
        (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map(
          (t) => t.name,
        ),
      );
    } catch (e) {
      throw new StoreFileError(`${file}: not a SQLite database (${(e as Error).message})`);
    }
    const missing = CORE_TABLES.filter((t) => !tables.has(t));
    // Stores made before schema 4 carry no application id; their tables tell.
    if ((appId !== APPLICATION_ID && appId !== 0) || version < 1 || missing.length > 0)
      throw new StoreFileError(
        `${file} is not a Vigil store (application_id ${appId}, schema version ${version}${missing.length ? `, no table ${missing.join(', ')}` : ''})`,
      );
    if (version > SCHEMA_VERSION)
      throw new StoreFileError(
        `${file} has schema version ${version}, newer than this gateway supports (${SCHEMA_VERSION}): restore it with the Vigil that made it`,
      );
    const check = (db.pragma('quick_check') as { quick_check: string }[]).map((r) => r.quick_check);
    if (check.join() !== 'ok')
      throw new StoreFileError(`${file} is damaged (quick_check: ${check.slice(0, 3).join('; ')})`);
    const count = (sql: string) => (db.prepare(sql).get() as { n: number }).n;
    return {
      file,
      bytes: statSync(file).size,
      schemaVersion: version,
      devices: count('SELECT count(*) AS n FROM devices'),
      enrolled: count('SELECT count(*) AS n FROM devices WHERE ak_public IS NOT NULL'),
      rounds: count('SELECT count(*) AS n FROM rounds'),
      releases: count('SELECT count(*) AS n FROM releases'),
    };
  } finally {
    db.close();
  }
}

/**
 * Makes `target` a copy of the store in `backup` (checked first). A database already at `target`
 * is moved aside to `keptAs`, never overwritten, and only when no other connection has it open:
 * leaving WAL mode needs every other connection gone, so a running gateway's database refuses.
 */
export async function restoreStoreFile(
  backup: string,
  target: string,
  keptAs: string,
): Promise<{ readonly restored: StoreFileInfo; readonly kept: string | undefined }> {
  const restored = inspectStoreFile(backup);
  let kept: string | undefined;
  if (existsSync(target)) {
    const db = new Database(target, { fileMustExist: true, timeout: 0 });
    try {
      // Checkpoints the WAL into the file and removes it: the file alone is then the database.
      db.pragma('journal_mode = DELETE');
    } catch (e) {
      throw new StoreFileError(
        `${target} is in use by another process (${(e as Error).message}): stop the gateway that runs on it first`,
      );
    } finally {
      db.close();
    }
    renameSync(target, keptAs);
    kept = keptAs;
  }
  // A WAL or shared-memory file left beside a missing database belongs to no database now.
  for (const sidecar of [`${target}-wal`, `${target}-shm`, `${target}-journal`])
    rmSync(sidecar, { force: true });
  const source = new Database(backup, { readonly: true, fileMustExist: true });
  try {
    await backupDatabase(source, target);
  } finally {
    source.close();
  }
  return { restored, kept };
}
