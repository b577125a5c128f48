import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { entriesAdmitting } from '../../gateway/store/allowlist.ts';
import {
  type Migration,
  migrate,
  SCHEMA_VERSION,
  StoreVersionError,
} from '../../gateway/store/migrations.ts';
import { SqliteStore, type SqliteStoreOptions } from '../../gateway/store/sqlite.ts';
import { StoreWriteError } from '../../gateway/store/store.ts';
import { sqliteSpecific } from '../support/gateway.ts';
import { storeContract } from '../support/store-contract.ts';
import {
  appraisedRound,
  DEVICE_ID,
  EK_HASH,
  fullDevice,
  minimalDevice,
  pendingRound,
  roundId,
} from './fixtures/store-records.ts';

sqliteSpecific(
  'test/gateway/store.test.ts',
  'the SQLite engine: its file, pragmas, migrations, SIGKILL safety; PostgreSQL: test/scale/postgres-store.test.ts',
);

const dirs: string[] = [];
const open: SqliteStore[] = [];

function tempFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'vigil-store-'));
  dirs.push(dir);
  return join(dir, 'posture.db');
}

/** A store that the tests never flush by time: commits happen only where a test causes them. */
function openStore(file = tempFile(), options: SqliteStoreOptions = {}): SqliteStore {
  const store = new SqliteStore(file, { flushDelayMs: 60_000, ...options });
  open.push(store);
  return store;
}

test.after.each(() => {
  for (const s of open.splice(0)) s.closeNow();
});

/** Whether the allowlist admits this EK (by its hash or its device id), as the runtime policy asks. */
async function admits(store: SqliteStore, ekHash: string): Promise<boolean> {
  const listed = await store.admitted();
  return entriesAdmitting(ekHash).some((e) => listed.includes(e));
}
test.after(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

// What every engine promises, on SQLite (PostgreSQL: test/scale/postgres-store.test.ts); below it,
// what is SQLite's own.
storeContract({
  name: 'SQLite',
  open: async (o = {}) => new SqliteStore(tempFile(), { flushDelayMs: 60_000, ...o }),
  async reopen(s) {
    await s.close();
    return new SqliteStore((s as SqliteStore).file, { flushDelayMs: 60_000 });
  },
  async cleanup() {},
});

test('a read sees queued writes; a keyed lookup or a read of an untouched table commits nothing', async () => {
  const store = openStore();
  store.saveDevice(minimalDevice());
  store.saveRound(pendingRound(1));
  store.saveRound(appraisedRound(1));
  assert.is(store.stats().queued, 2);
  assert.not.ok(await admits(store, EK_HASH));
  assert.equal(await store.device(DEVICE_ID), minimalDevice());
  assert.equal(await store.round(roundId(1)), appraisedRound(1), 'the newest queued save');
  assert.is(store.stats().commits, 0, 'all of that was answered from the queue');
  assert.equal(await store.devices(), [minimalDevice()]);
  assert.is(store.stats().commits, 1);
  assert.equal(await store.pendingRounds(), []);
});

test('a write the database refuses is reported; the rest of its batch is committed', async () => {
  const errors: Error[] = [];
  const store = openStore(tempFile(), { onWriteError: (e) => errors.push(e) });
  store.saveDevice(minimalDevice());
  store.saveRound(pendingRound(1, 'ffffffffffffffffffffffff'));
  store.saveRound(pendingRound(2));
  store.flushNow();
  assert.is(errors.length, 1);
  assert.instance(errors[0], StoreWriteError);
  assert.match(String(errors[0]?.message), /saveRound 0+1: FOREIGN KEY constraint failed/);
  assert.equal(
    (await store.pendingRounds()).map((r) => r.id),
    [roundId(2)],
  );
  assert.is(store.stats().failedWrites, 1);
});

test('migration from empty reaches the current version and passes integrity_check', async () => {
  const store = openStore();
  assert.is(await store.integrityCheck(), 'ok');
  store.closeNow();
  const db = new Database(store.file, { readonly: true });
  try {
    assert.is(db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
    assert.is(db.pragma('journal_mode', { simple: true }), 'wal');
  } finally {
    db.close();
  }
  assert.not.throws(() => openStore(store.file), 'reopening applies nothing and succeeds');
});

test('a database from a newer gateway is refused with a clear error', async () => {
  const file = tempFile();
  const db = new Database(file);
  db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
  db.close();
  try {
    openStore(file);
    assert.unreachable('opened a future schema');
  } catch (err) {
    assert.instance(err, StoreVersionError);
    assert.match(
      String((err as Error).message),
      `schema version ${SCHEMA_VERSION + 1} is newer than this gateway supports (${SCHEMA_VERSION})`,
    );
  }
});

test('a failing migration step leaves the database at the previous whole version', async () => {
  const db = new Database(':memory:');
  const steps: Migration[] = [
    { version: 1, description: 'ok', sql: 'CREATE TABLE a (x INTEGER)' },
    { version: 2, description: 'broken', sql: 'CREATE TABLE b (y INTEGER); CREATE TABLE a (z INTEGER)' },
  ];
  assert.throws(() => migrate(db, ':memory:', steps), /already exists/);
  assert.is(db.pragma('user_version', { simple: true }), 1);
  assert.equal(db.prepare("SELECT name FROM sqlite_master WHERE name = 'b'").all(), []);
  db.close();
});

const WRITER = fileURLToPath(new URL('./fixtures/store-writer.ts', import.meta.url));

test('SIGKILL mid-write loses nothing committed and leaves the database intact', async () => {
  const file = tempFile();
  const child = spawn(process.execPath, ['--import', 'tsx', WRITER, file], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => {
    stderr += b.toString();
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    child.on('exit', (_code, signal) => resolve(signal)),
  );
  let committed = 0;
  let buffered = '';
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (b: Buffer) => {
        buffered += b.toString();
        const lines = buffered.split('\n');
        buffered = lines.pop() ?? '';
        for (const line of lines) committed = Number(line.split(' ')[1]);
        // Several commits behind us and the child still writing: kill it now, mid-transaction.
        if (committed >= 2000) {
          child.kill('SIGKILL');
          resolve();
        }
      });
      child.on('exit', () => reject(new Error(`writer exited before it was killed: ${stderr}`)));
    });
  } finally {
    child.kill('SIGKILL');
  }
  assert.is(await exited, 'SIGKILL');
  const store = openStore(file);
  assert.is(await store.integrityCheck(), 'ok');
  const rounds = await store.pendingRounds();
  assert.ok(
    rounds.length >= committed,
    `${rounds.length} rounds in the store, ${committed} reported committed`,
  );
  assert.equal(rounds[committed - 1], pendingRound(committed - 1));
  assert.equal(await store.device(DEVICE_ID), fullDevice());
});

test.run();
