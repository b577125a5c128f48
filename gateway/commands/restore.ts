import { resolve } from 'node:path';
import { loadConfig } from '../config.ts';
import { readRunFile } from '../run-file.ts';
import { acquireStoreLock, GatewayLockedError } from '../store/lock.ts';
import { SCHEMA_VERSION } from '../store/migrations.ts';
import { restoreStoreFile } from '../store/sqlite-file.ts';
import { parse, UsageError } from './args.ts';
import { describe } from './backup.ts';
import { CommandError, gatewayDir, requireSqliteStore } from './client.ts';

// `vigil-gateway restore FILE --dir DIR`: the gateway directory's store becomes the backup in
// FILE, once FILE is known to be an intact Vigil store of a schema this gateway supports. Never
// while a gateway runs on DIR (its run file, and the store's lock, which the restore holds so that
// no gateway starts on a half-restored store), and the database it replaces is kept beside it.

export async function restore(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { dir: { type: 'string' } });
  if (positionals.length !== 1) throw new UsageError('restore takes one backup file');
  const file = resolve(positionals[0]!);
  const config = loadConfig(gatewayDir(values.dir));
  requireSqliteStore(config, 'restore');
  const running = readRunFile(config.dir);
  if (running)
    throw new CommandError(
      `a gateway (pid ${running.pid}) is running on ${config.dir}: stop it first; restore never replaces a live database`,
    );
  const lock = lockStore(config.database);
  const keptAs = `${config.database}.before-restore-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  let result: Awaited<ReturnType<typeof restoreStoreFile>>;
  try {
    result = await restoreStoreFile(file, config.database, keptAs);
  } finally {
    lock.release();
  }
  const { restored, kept } = result;
  process.stdout.write(
    `restored ${file} into ${config.database}:\n${describe({ ...restored, file: config.database })}\n` +
      (kept ? `the database it replaced is kept as ${kept}\n` : '') +
      (restored.schemaVersion < SCHEMA_VERSION
        ? `the gateway migrates it from schema ${restored.schemaVersion} to ${SCHEMA_VERSION} when it starts\n`
        : '') +
      `start the gateway: vigil-gateway start --dir ${config.dir}\n`,
  );
  return 0;
}

function lockStore(database: string) {
  try {
    return acquireStoreLock(database, Date.now());
  } catch (e) {
    if (e instanceof GatewayLockedError)
      throw new CommandError(
        `a gateway (pid ${e.holder.pid}) holds the store ${database}: stop it first; restore never replaces a live database`,
      );
    throw e;
  }
}
