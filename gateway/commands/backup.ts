import { resolve } from 'node:path';
import Database from 'better-sqlite3';
import { loadConfig } from '../config.ts';
import { readRunFile } from '../run-file.ts';
import type { BackupInfo } from '../store/sqlite.ts';
import { backupDatabase, inspectStoreFile, type StoreFileInfo } from '../store/sqlite-file.ts';
import { client, parse, TARGET_OPTIONS, UsageError } from './args.ts';
import { gatewayDir, requireSqliteStore } from './client.ts';

// `vigil-gateway backup --out FILE`: a consistent copy of the gateway's store. From the running
// gateway through its API (SQLite's online backup, rounds going on meanwhile), or, when none
// runs on the directory, straight from the database file. Either way the copy is then checked
// the way `restore` will check it.

export async function backup(args: string[]): Promise<number> {
  const { values } = parse(args, { ...TARGET_OPTIONS, out: { type: 'string' } }, false);
  if (!values.out) throw new UsageError('backup needs --out FILE, a new file for the copy');
  const out = resolve(values.out);
  const config = loadConfig(gatewayDir(values.dir));
  const running = readRunFile(config.dir);
  let how: string;
  let uncommitted = 0;
  if (running || values.api) {
    const info = await client(values).request<BackupInfo>('POST', '/v1/backup', { file: out });
    uncommitted = info.uncommitted;
    how = `from the running gateway${running ? ` (pid ${running.pid})` : ''}`;
  } else {
    requireSqliteStore(config, 'backup');
    const db = new Database(config.database, { readonly: true, fileMustExist: true });
    try {
      await backupDatabase(db, out);
    } finally {
      db.close();
    }
    how = `from ${config.database} (no gateway runs on ${config.dir})`;
  }
  const info = inspectStoreFile(out);
  process.stdout.write(`backup written ${how}:\n${describe(info)}\n`);
  if (uncommitted > 0)
    process.stderr.write(
      `warning: the store could not write when the backup was taken: ${uncommitted} queued writes are not in it (GET /v1/health)\n`,
    );
  return 0;
}

export function describe(i: StoreFileInfo): string {
  return (
    `  ${i.file}: ${i.bytes} bytes, schema version ${i.schemaVersion}\n` +
    `  ${i.devices} devices (${i.enrolled} enrolled), ${i.rounds} rounds, ${i.releases} releases`
  );
}
