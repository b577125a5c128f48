import { isAbsolute } from 'node:path';
import { SqliteStore } from '../../store/sqlite.ts';
import { StoreFileError } from '../../store/sqlite-file.ts';
import type { ApiContext } from '../context.ts';
import { ApiError } from '../errors.ts';
import { onlyKeys, readJson } from '../http.ts';
import type { Router } from '../router.ts';

// POST /v1/backup: a consistent copy of the running gateway's SQLite store, written by the
// gateway to a path on its machine (SQLite's online backup: rounds go on meanwhile). A new file
// only: an existing one is never overwritten. Other engines have their own tools (pg_dump).

export function backupRoutes(router: Router, ctx: ApiContext): void {
  router.on('POST', '/v1/backup', async ({ req }) => {
    const body = await readJson(req);
    onlyKeys(body, ['file'], 'backup');
    const file = body.file;
    if (typeof file !== 'string' || !isAbsolute(file))
      throw new ApiError(
        'bad-request',
        `backup: "file" must be an absolute path on the gateway's machine, e.g. /var/backups/vigil.db; got ${JSON.stringify(file)}`,
      );
    const store = ctx.gateway.store;
    if (!(store instanceof SqliteStore))
      throw new ApiError(
        'backup-unsupported',
        `this gateway's store is ${store.describe}: back it up with that engine's own tools (pg_dump for PostgreSQL)`,
      );
    const started = performance.now();
    try {
      const info = await store.backup(file);
      ctx.gateway.log.info({ file, bytes: info.bytes, uncommitted: info.uncommitted }, 'store backed up');
      return { status: 201, json: { ...info, ms: Math.round(performance.now() - started) } };
    } catch (e) {
      if (e instanceof StoreFileError) throw new ApiError('backup-refused', e.message);
      throw new ApiError('backup-failed', `backup to ${file} failed: ${(e as Error).message}`);
    }
  });
}
