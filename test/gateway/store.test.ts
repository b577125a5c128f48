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
import { SqliteStore, type SqliteStoreOptions, StoreWriteError } from '../../gateway/store/sqlite.ts';
import { sqliteSpecific } from '../support/gateway.ts';
import {
  appraisedRound,
  batch,
  DEVICE_ID,
  EK_HASH,
  fullDevice,
  minimalDevice,
  pendingRound,
  postureEvent,
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

function reopen(store: SqliteStore, options: SqliteStoreOptions = {}): SqliteStore {
  store.closeNow();
  return openStore(store.file, options);
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

test('devices round-trip with every field, including a UINT64 clock above 2^63 and byte fields', async () => {
  let store = openStore();
  const full = fullDevice();
  const other = minimalDevice('0123456789abcdef01234567', `0123456789abcdef01234567${'0'.repeat(40)}`);
  store.saveDevice(full);
  store.saveDevice(other);
  store = reopen(store);
  const back = await store.device(DEVICE_ID);
  assert.equal(back, full);
  assert.is(back?.clock?.clock, (1n << 63n) + 12_345n);
  assert.instance(back?.ekPublic, Uint8Array);
  assert.equal(await store.device(other.id), other);
  assert.equal(
    (await store.devices()).map((d) => d.id),
    [other.id, DEVICE_ID],
  );
  assert.is(await store.device('ffffffffffffffffffffffff'), undefined);
});

test('the largest UINT64 clock survives; a clock outside UINT64 is refused at the call', async () => {
  let store = openStore();
  const max = { ...fullDevice(), clock: { clock: (1n << 64n) - 1n, resetCount: 0, restartCount: 0 } };
  store.saveDevice(max);
  store = reopen(store);
  assert.is((await store.device(DEVICE_ID))?.clock?.clock, (1n << 64n) - 1n);
  assert.throws(
    () => store.saveDevice({ ...max, clock: { clock: 1n << 64n, resetCount: 0, restartCount: 0 } }),
    /clock: expected a UINT64/,
  );
});

test('a saved device is replaced, optional fields removed included', async () => {
  const store = openStore();
  store.saveDevice(fullDevice());
  store.saveDevice(minimalDevice());
  store.flushNow();
  assert.equal(await store.device(DEVICE_ID), minimalDevice());
});

test('rounds round-trip pending and appraised, with evidence enough to re-verify', async () => {
  let store = openStore();
  store.saveDevice(minimalDevice());
  store.saveRound(pendingRound(1));
  store.saveRound(appraisedRound(2));
  store = reopen(store);
  assert.equal(await store.round(roundId(1)), pendingRound(1));
  assert.equal(await store.round(roundId(2)), appraisedRound(2));
  assert.is(await store.round(roundId(3)), undefined);
});

test('a round moves pending → appraised by saving it again', async () => {
  const store = openStore();
  store.saveDevice(minimalDevice());
  store.saveRound(pendingRound(1));
  store.flushNow();
  store.saveRound(appraisedRound(1));
  assert.equal(await store.round(roundId(1)), appraisedRound(1));
  assert.equal(await store.pendingRounds(), []);
});

test('pendingRounds, recentRounds and roundsOfBatch select and order', async () => {
  const store = openStore();
  store.saveDevice(minimalDevice());
  const otherId = '0123456789abcdef01234567';
  store.saveDevice(minimalDevice(otherId, `${otherId}${'0'.repeat(40)}`));
  for (const n of [3, 1, 2]) store.saveRound(pendingRound(n, DEVICE_ID, 'b1'));
  store.saveRound(appraisedRound(4));
  store.saveRound({ ...pendingRound(5, otherId), state: 'stale', codes: ['stale'] });
  store.saveRound(pendingRound(6, otherId));
  assert.equal(
    (await store.pendingRounds()).map((r) => r.id),
    [1, 2, 3, 6].map(roundId),
  );
  assert.equal(
    (await store.recentRounds(DEVICE_ID, 3)).map((r) => r.id),
    [4, 3, 2].map(roundId),
  );
  assert.equal(
    (await store.recentRounds(otherId, 10)).map((r) => r.id),
    [6, 5].map(roundId),
  );
  assert.equal(
    (await store.rounds([3, 1, 2, 99].map(roundId))).map((r) => r.id).sort(),
    [1, 2, 3].map(roundId),
  );
  assert.equal(await store.rounds([]), []);
});

test('posture events: newest first, limited, per device', async () => {
  let store = openStore();
  store.saveDevice(minimalDevice());
  for (const at of [1, 2, 3]) store.addPostureEvent(postureEvent(at));
  store.addPostureEvent({ deviceId: DEVICE_ID, at: 4, from: 'unknown', to: 'enrolling', reasons: [] });
  store = reopen(store);
  assert.equal(await store.postureEvents(DEVICE_ID, 2), [
    { deviceId: DEVICE_ID, at: 4, from: 'unknown', to: 'enrolling', reasons: [] },
    postureEvent(3),
  ]);
  assert.is((await store.postureEvents(DEVICE_ID, 10)).length, 4);
  assert.equal(await store.postureEvents('0123456789abcdef01234567', 10), []);
});

test('allowlist: by EK hash or device id, normalised, revocable, malformed entries refused', async () => {
  let store = openStore();
  const other = 'ab'.repeat(32);
  store.admit(EK_HASH.toUpperCase(), 'line 1');
  assert.ok(await admits(store, EK_HASH));
  assert.not.ok(await admits(store, other));
  store.admit(other.slice(0, 24));
  assert.ok(await admits(store, other), 'admitted by device id');
  store = reopen(store);
  assert.equal(await store.admitted(), [other.slice(0, 24), EK_HASH]);
  store.revoke(EK_HASH);
  assert.not.ok(await admits(store, EK_HASH));
  assert.throws(() => store.admit('xyz'), /allowlist entry: expected an EK hash \(64 hex digits\).*"xyz"/);
  assert.throws(() => store.revoke('abc'), TypeError);
});

test('releases: added, replaced by name and version, removed; a bad digest is refused', async () => {
  let store = openStore();
  const d1 = 'a'.repeat(64);
  const d2 = 'B'.repeat(64);
  store.addRelease({ name: 'vigil-agent', version: '0.1.0', digest: d1, addedAt: 1 });
  store.addRelease({ name: 'vigil-agent', version: '0.2.0', digest: d1, addedAt: 2 });
  store = reopen(store);
  store.addRelease({ name: 'vigil-agent', version: '0.1.0', digest: d2, addedAt: 3 });
  assert.equal(await store.releases(), [
    { name: 'vigil-agent', version: '0.2.0', digest: d1, addedAt: 2 },
    { name: 'vigil-agent', version: '0.1.0', digest: d2.toLowerCase(), addedAt: 3 },
  ]);
  store.removeRelease('vigil-agent', '0.2.0');
  store.removeRelease('vigil-agent', '9.9.9');
  assert.is((await store.releases()).length, 1);
  assert.throws(
    () => store.addRelease({ name: 'x', version: '1', digest: 'abc', addedAt: 0 }),
    /release x 1: digest: expected 64 hex digits/,
  );
});

test('batches round-trip', async () => {
  let store = openStore();
  const b = batch('batch-1', [roundId(1), roundId(2)]);
  store.saveBatch(b);
  store = reopen(store);
  assert.equal(await store.batch('batch-1'), b);
  assert.is(await store.batch('batch-2'), undefined);
});

test('writes are batched: 2,000 rounds are a few commits, not 2,000', async () => {
  const store = openStore(tempFile(), { maxBatch: 500 });
  store.saveDevice(minimalDevice());
  for (let n = 0; n < 2000; n++) store.saveRound(pendingRound(n));
  store.flushNow();
  const s = store.stats();
  assert.is(s.writes, 2001);
  assert.is(s.commits, 5, 'four full batches of 500 and the rest at flush');
  assert.is(s.queued, 0);
  assert.is((await store.pendingRounds()).length, 2000);
});

test('saves of the same record before a commit coalesce into one write', async () => {
  const store = openStore();
  const d = minimalDevice();
  store.saveDevice(d);
  store.saveRound(pendingRound(1));
  for (let i = 0; i < 99; i++) store.saveDevice({ ...d, lastSeen: i });
  store.admit(EK_HASH);
  store.revoke(EK_HASH);
  store.flushNow();
  assert.equal(store.stats(), { commits: 1, writes: 3, coalesced: 100, failedWrites: 0, queued: 0 });
  assert.is((await store.device(DEVICE_ID))?.lastSeen, 98);
  assert.not.ok(await admits(store, EK_HASH));
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

test('the timer commits queued writes without an explicit flush', async () => {
  const store = openStore(tempFile(), { flushDelayMs: 5 });
  store.saveDevice(minimalDevice());
  for (let i = 0; i < 100 && store.stats().queued > 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.is(store.stats().commits, 1);
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

test('a closed store refuses writes and reads; close is idempotent', async () => {
  const store = openStore();
  store.closeNow();
  await store.close();
  assert.throws(() => store.saveDevice(minimalDevice()), /is closed: cannot saveDevice/);
  const read = await store.devices().then(
    () => 'read',
    (e: Error) => e.message,
  );
  assert.match(read, /is closed/);
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

test('retention: settled rounds before the cut are pruned oldest first and in bounded steps; pending rounds stay', async () => {
  const store = openStore();
  store.saveDevice(fullDevice());
  for (let n = 1; n <= 5; n++) store.saveRound(appraisedRound(n));
  store.saveRound(pendingRound(6));
  // Issued at base + n: the cut below keeps rounds 4 and 5 (and the pending 6, however old).
  const cut = pendingRound(4).issuedAt;
  assert.is(await store.pruneRounds(cut, 2), 2, 'a step deletes at most its limit');
  assert.equal(await store.round(roundId(1)), undefined, 'the oldest go first');
  assert.ok(await store.round(roundId(3)));
  assert.is(await store.pruneRounds(cut, 100), 1);
  assert.is(await store.pruneRounds(cut, 100), 0);
  assert.equal(
    (await store.recentRounds(DEVICE_ID, 10)).map((r) => r.id),
    [roundId(6), roundId(5), roundId(4)],
  );
  assert.is(
    await store.pruneRounds(pendingRound(100).issuedAt, 100),
    2,
    'a pending round is kept whatever its age',
  );
  assert.equal(
    (await store.pendingRounds()).map((r) => r.id),
    [roundId(6)],
  );
});

test('pending rounds and everything else survive a restart', async () => {
  let store = openStore();
  store.saveDevice(fullDevice());
  store.saveRound(pendingRound(1, DEVICE_ID, 'b'));
  store.saveBatch(batch('b', [roundId(1)]));
  store.addPostureEvent(postureEvent(5));
  store.admit(EK_HASH);
  store = reopen(store);
  assert.equal(await store.pendingRounds(), [pendingRound(1, DEVICE_ID, 'b')]);
  assert.equal(await store.devices(), [fullDevice()]);
  assert.equal(await store.batch('b'), batch('b', [roundId(1)]));
  assert.ok(await admits(store, EK_HASH));
  assert.is((await store.postureEvents(DEVICE_ID, 1)).length, 1);
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
