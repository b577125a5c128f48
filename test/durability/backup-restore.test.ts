import { cpSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pino from 'pino';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type Gateway, startGateway } from '../../gateway/gateway.ts';
import { initGateway } from '../../gateway/setup/init.ts';
import { acquireStoreLock } from '../../gateway/store/lock.ts';
import { SCHEMA_VERSION } from '../../gateway/store/migrations.ts';
import { SqliteStore } from '../../gateway/store/sqlite.ts';
import { restoreStoreFile, StoreFileError } from '../../gateway/store/sqlite-file.ts';
import { type SimFleet, startSimFleet } from '../equipment/sim/fleet.ts';
import type { SimDevice } from '../equipment/sim/sim-device.ts';
import { sqliteSpecific, startTestGateway, type TestGateway } from '../support/gateway.ts';
import { freePort } from '../support/ports.ts';
import { gatewayCli } from '../support/run.ts';
import { simPolicy } from '../support/sim-devices.ts';
import { tempDir } from '../support/tmp.ts';

sqliteSpecific(
  'test/durability/backup-restore.test.ts',
  "SQLite's online backup; PostgreSQL is backed up with pg_dump",
);

// A backup taken from a running gateway while 200 sim devices attest, restored into a new
// gateway directory: the restored gateway has every enrolment, release, label and round of the
// backup, and the same devices re-attest there without activation. Restore refuses a live
// database, a file that is not a Vigil store, and a store from a newer Vigil.

const DEVICES = 200;
const RELEASE = { name: 'kitchen-app', version: '2.1', digest: 'ab'.repeat(32) };

interface Ctx {
  gw?: TestGateway;
  fleet?: SimFleet;
  restored?: Gateway | undefined;
}
const it = suite<Ctx>('backup while devices attest, restore into a new directory');

it.before(async (ctx) => {
  // Periodic rounds every few seconds: the store is written all through the backup.
  ctx.gw = await startTestGateway({
    policy: simPolicy({ periodicMs: 3000, deadlineMs: 2500 }),
    sqlite: true,
  });
});

it.after(async (ctx) => {
  await ctx.fleet?.close();
  await ctx.restored?.close();
  await ctx.gw?.stop();
});

function readDb<T>(file: string, read: (db: Database.Database) => T): T {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return read(db);
  } finally {
    db.close();
  }
}

const enrolments = (file: string) =>
  readDb(file, (db) =>
    db.prepare('SELECT id, hex(ak_name) AS ak, labels FROM devices ORDER BY id').all(),
  ) as { id: string; ak: string; labels: string }[];
const roundCount = (file: string) =>
  readDb(file, (db) => (db.prepare('SELECT count(*) AS n FROM rounds').get() as { n: number }).n);

it('backup under load, restore elsewhere: same enrolments, releases, history; devices re-attest without activation', async (ctx) => {
  const gw = ctx.gw!;
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`http://127.0.0.1:${gw.gateway.apiPort}${path}`, {
      method,
      headers: { authorization: `Bearer ${gw.operatorToken}`, 'content-type': 'application/json' },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  };
  ctx.fleet = startSimFleet({
    url: gw.url,
    ca: gw.ca,
    count: DEVICES,
    concurrency: 32,
    seedPrefix: 'backup',
    readyTimeoutMs: 120_000,
  });
  await ctx.fleet.ready;
  assert.equal(ctx.fleet.refused, []);
  const devices = ctx.fleet.devices;
  assert.is((await api('POST', '/v1/releases', RELEASE)).status, 201);
  assert.is(
    (await api('PATCH', `/v1/devices/${devices[0]!.id}/labels`, { set: { swarm: 'kitchen' } })).status,
    200,
  );

  // The backup, through the running gateway, while an on-demand round runs over the whole fleet
  // on top of the periodic ones.
  const db = join(gw.dir, 'vigil.db');
  await gw.gateway.store.flush();
  const roundsBefore = roundCount(db);
  const file = join(tempDir('backup'), 'vigil-backup.db');
  const results = devices.map((d) => d.nextResult(30_000));
  gw.gateway.batches.start(
    { all: true },
    devices.map((d) => d.id),
  );
  const backup = await gatewayCli(['backup', '--out', file, '--dir', gw.dir]);
  assert.is(backup.code, 0, backup.stderr);
  assert.match(backup.stdout, /backup written from the running gateway \(pid \d+\)/);
  assert.match(backup.stdout, `${DEVICES} devices (${DEVICES} enrolled)`);
  assert.ok((await Promise.all(results)).every((r) => r.status === 'affirming'));
  await gw.gateway.store.flush();
  assert.ok(roundCount(db) > roundsBefore, 'rounds were written around the backup');
  const again = await gatewayCli(['backup', '--out', file, '--dir', gw.dir]);
  assert.is(again.code, 1);
  assert.match(again.stderr, 'exists: choose a new file name for the backup [backup-refused]');

  // Restore: never into the running gateway's directory.
  const live = await gatewayCli(['restore', file, '--dir', gw.dir]);
  assert.is(live.code, 1);
  assert.match(live.stderr, /a gateway \(pid \d+\) is running on .*: stop it first/);

  // A new directory with the same keys and certificates (the backup holds the store only).
  const newDir = tempDir('restored');
  for (const f of readdirSync(gw.dir))
    if (!f.startsWith('vigil.db') && f !== 'run.json')
      cpSync(join(gw.dir, f), join(newDir, f), { recursive: true });
  const port = await freePort();
  const config = JSON.parse(readFileSync(join(newDir, 'gateway.json'), 'utf8'));
  config.mqtt.port = port;
  writeFileSync(join(newDir, 'gateway.json'), JSON.stringify(config));
  const restore = await gatewayCli(['restore', file, '--dir', newDir]);
  assert.is(restore.code, 0, restore.stderr);
  assert.match(restore.stdout, `${DEVICES} devices (${DEVICES} enrolled)`);
  const restoredDb = join(newDir, 'vigil.db');
  assert.equal(enrolments(restoredDb), enrolments(file), 'the restored store is the backup');
  const atBackup = enrolments(file);
  assert.is(atBackup.length, DEVICES);
  assert.ok(atBackup.every((d) => d.ak.length > 0));

  ctx.restored = await startGateway({ dir: newDir, apiPort: 0, logger: pino({ level: 'silent' }) });
  const restored = ctx.restored;
  const releases = await fetch(`http://127.0.0.1:${restored.apiPort}/v1/releases`, {
    headers: { authorization: `Bearer ${gw.operatorToken}` },
  }).then((r) => r.json() as Promise<{ releases: { name: string; digest: string }[] }>);
  assert.ok(releases.releases.some((r) => r.name === RELEASE.name && r.digest === RELEASE.digest));
  assert.equal(restored.fleet.get(devices[0]!.id)?.labels, { swarm: 'kitchen' });

  // The same devices move to the restored gateway: known, enrolled, no activation asked.
  const url = `mqtts://localhost:${port}`;
  const activations: string[] = [];
  const moved = await moveFleet(devices, url, gw.ca, (d, activate) => activate && activations.push(d.id));
  assert.equal(activations, [], 'no device was asked to activate its AK again');
  assert.ok(
    moved.every((s) => s === 'affirming'),
    'every device affirming on the restored gateway',
  );
  await restored.store.flush();
  await ctx.fleet.close();
  await restored.close();
  ctx.restored = undefined;
  assert.equal(
    enrolments(restoredDb).map((d) => [d.id, d.ak]),
    atBackup.map((d) => [d.id, d.ak]),
    'the same AKs, none enrolled anew',
  );

  // With no gateway running on it, backup reads the file itself.
  const offline = await gatewayCli([
    'backup',
    '--out',
    join(tempDir('backup'), 'offline.db'),
    '--dir',
    newDir,
  ]);
  assert.is(offline.code, 0, offline.stderr);
  assert.match(offline.stdout, /backup written from .*vigil\.db \(no gateway runs on/);
});

/** Closes each device's connection and connects it to `url`; resolves with each first result's status. */
async function moveFleet(
  devices: readonly SimDevice[],
  url: string,
  ca: Buffer,
  challenged: (d: SimDevice, activate: boolean) => void,
): Promise<string[]> {
  const statuses: string[] = [];
  let next = 0;
  const lane = async () => {
    while (next < devices.length) {
      const d = devices[next++]!;
      await d.close();
      d.once('challenge', (c) => challenged(d, c.activate !== undefined));
      const result = d.nextResult(30_000);
      await d.connect(url, ca);
      statuses.push((await result).status);
    }
  };
  await Promise.all(Array.from({ length: 16 }, lane));
  return statuses;
}

it('restore refuses what is not a Vigil store of a supported schema, and a database in use', async () => {
  const dir = tempDir('restore-refusals');
  const target = join(dir, 'vigil.db');
  writeFileSync(join(dir, 'junk.db'), 'not a database at all, just text\n'.repeat(200));
  await restoreStoreFile(join(dir, 'junk.db'), target, `${target}.kept`).then(
    () => assert.unreachable('restored junk'),
    (e: Error) => {
      assert.instance(e, StoreFileError);
      assert.match(e.message, 'junk.db: not a SQLite database');
    },
  );
  const other = new Database(join(dir, 'other.db'));
  other.exec('CREATE TABLE notes (x TEXT)');
  other.close();
  await restoreStoreFile(join(dir, 'other.db'), target, `${target}.kept`).then(
    () => assert.unreachable('restored a foreign database'),
    (e: Error) =>
      assert.match(
        e.message,
        /other\.db is not a Vigil store \(application_id 0, schema version 0, no table devices/,
      ),
  );
  const future = join(dir, 'future.db');
  const store = new SqliteStore(future);
  store.closeNow();
  const f = new Database(future);
  f.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
  f.close();
  await restoreStoreFile(future, target, `${target}.kept`).then(
    () => assert.unreachable('restored a newer schema'),
    (e: Error) =>
      assert.match(e.message, `schema version ${SCHEMA_VERSION + 1}, newer than this gateway supports`),
  );

  // A database another connection holds open is never replaced.
  const current = join(dir, 'current.db');
  const good = new SqliteStore(current);
  good.closeNow();
  const inUse = new SqliteStore(target);
  try {
    await restoreStoreFile(current, target, `${target}.kept`).then(
      () => assert.unreachable('replaced a database in use'),
      (e: Error) => assert.match(e.message, 'is in use by another process'),
    );
  } finally {
    inUse.closeNow();
  }
  const { kept } = await restoreStoreFile(current, target, `${target}.kept`);
  assert.is(kept, `${target}.kept`, 'once closed, it is replaced and kept aside');

  // A store whose lock a gateway holds is never replaced, run file or not.
  const locked = initGateway({ dir: tempDir('restore-locked'), hosts: ['localhost'] });
  const lock = acquireStoreLock(locked.database, Date.now());
  try {
    const r = await gatewayCli(['restore', current, '--dir', locked.dir]);
    assert.is(r.code, 1, r.stdout);
    assert.match(
      r.stderr,
      `a gateway (pid ${process.pid}) holds the store ${locked.database}: stop it first`,
    );
  } finally {
    lock.release();
  }
  const r = await gatewayCli(['restore', current, '--dir', locked.dir]);
  assert.is(r.code, 0, r.stderr);

  // A PostgreSQL store is not restore's (nor backup's) to replace.
  const pg = initGateway({
    dir: tempDir('restore-pg'),
    hosts: ['localhost'],
    database: 'postgres://vigil@127.0.0.1:1/vigil',
  });
  for (const command of [
    ['restore', current, '--dir', pg.dir],
    ['backup', '--out', join(dir, 'pg.db'), '--dir', pg.dir],
  ]) {
    const refused = await gatewayCli(command);
    assert.is(refused.code, 1, refused.stdout);
    assert.match(refused.stderr, 'keeps its store in PostgreSQL');
    assert.match(refused.stderr, `[${command[0]}-unsupported]`);
  }
});

it.run();
