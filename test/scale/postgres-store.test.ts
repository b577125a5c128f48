import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { DeviceRecord } from '../../gateway/model.ts';
import { createRollout, step } from '../../gateway/rollouts/machine.ts';
import type { Rollout } from '../../gateway/rollouts/model.ts';
import { StoreVersionError } from '../../gateway/store/migrations.ts';
import {
  type DeviceConflict,
  PostgresStore,
  type PostgresStoreOptions,
} from '../../gateway/store/postgres.ts';
import { PG_SCHEMA_VERSION } from '../../gateway/store/postgres-migrations.ts';
import {
  batch,
  DEVICE_ID,
  EK_HASH,
  fullDevice,
  minimalDevice,
  pendingRound,
  postureEvent,
  rolloutSpec,
  roundId,
} from '../gateway/fixtures/store-records.ts';
import { sharedPostgres, sql, startPostgres } from '../support/postgres.ts';
import { storeContract } from '../support/store-contract.ts';
import { removeDir, tempDir } from '../support/tmp.ts';

// The PostgreSQL store: the Store contract (SQLite runs it in test/gateway/store.test.ts), then
// what only the shared engine has (owners, versions, requested rounds, adoption, migrations by several
// gateways at once, a server that goes away and comes back).

const pgUrls = new Map<PostgresStore, string>();
storeContract({
  name: 'PostgreSQL',
  async open(o = {}) {
    const url = await (await sharedPostgres()).createDatabase('contract');
    const s = await PostgresStore.open({ url, gatewayId: 'gw-a', flushDelayMs: 60_000, ...o });
    pgUrls.set(s, url);
    return s;
  },
  async reopen(s) {
    await s.close();
    const url = pgUrls.get(s as PostgresStore)!;
    const r = await PostgresStore.open({ url, gatewayId: 'gw-a', flushDelayMs: 60_000 });
    pgUrls.set(r, url);
    return r;
  },
  async cleanup() {},
});

const it = suite('PostgreSQL store: several gateways on one database');
const opened: PostgresStore[] = [];

async function openPg(o: Partial<PostgresStoreOptions> & { url: string }): Promise<PostgresStore> {
  const s = await PostgresStore.open({ gatewayId: 'gw-a', flushDelayMs: 60_000, ...o });
  opened.push(s);
  return s;
}

it.after.each(async () => {
  for (const s of opened.splice(0)) await s.close().catch(() => {});
});

it('gateways starting together migrate once; the schema is at its version', async () => {
  const url = await (await sharedPostgres()).createDatabase('migrate');
  const stores = await Promise.all(['gw-a', 'gw-b', 'gw-c'].map((gatewayId) => openPg({ url, gatewayId })));
  assert.is(stores.length, 3);
  const rows = await sql<{ version: number }>(url, 'SELECT version FROM schema_migrations ORDER BY version');
  assert.equal(
    rows.map((r) => r.version),
    Array.from({ length: PG_SCHEMA_VERSION }, (_, i) => i + 1),
  );
  assert.is(await stores[0]!.integrityCheck(), 'ok');
});

it('a database from a newer gateway is refused with a clear error', async () => {
  const url = await (await sharedPostgres()).createDatabase('newer');
  await (await openPg({ url })).close();
  await sql(url, "INSERT INTO schema_migrations (version, description) VALUES (99, 'from the future')");
  try {
    await openPg({ url });
    assert.unreachable('opened a future schema');
  } catch (err) {
    assert.instance((err as Error).cause, StoreVersionError);
    assert.match(String((err as Error).message), /schema version 99 is newer than this gateway supports/);
  }
});

it('a BIGINT beyond 2^53 is refused on read, not rounded; U+0000 in text is kept as U+FFFD', async () => {
  const url = await (await sharedPostgres()).createDatabase('types');
  const store = await openPg({ url });
  store.saveDevice({ ...minimalDevice(), agent: 'evil\u0000agent' });
  assert.is((await store.device(DEVICE_ID))?.agent, 'evil\uFFFDagent');
  await sql(url, 'UPDATE devices SET last_seen = $1', ['1152921504606846976']);
  const read = await store.device(DEVICE_ID).then(
    () => 'read',
    (e: Error) => e.message,
  );
  assert.match(read, /BIGINT 1152921504606846976 is beyond the exact range/);
});

it('pendingRounds are the rounds this gateway owns; another gateway re-arms none of them', async () => {
  const url = await (await sharedPostgres()).createDatabase('owners');
  const a = await openPg({ url, gatewayId: 'gw-a' });
  const b = await openPg({ url, gatewayId: 'gw-b' });
  a.saveDevice(minimalDevice());
  await a.flush();
  a.saveRound(pendingRound(1));
  b.saveRound(pendingRound(2));
  await a.flush();
  await b.flush();
  assert.equal(
    (await a.pendingRounds()).map((r) => r.id),
    [roundId(1)],
  );
  assert.equal(
    (await b.pendingRounds()).map((r) => r.id),
    [roundId(2)],
  );
  assert.equal(
    (await a.rounds([roundId(1), roundId(2)])).map((r) => r.id).sort(),
    [roundId(1), roundId(2)],
    'every round is visible to every gateway',
  );
});

it('a write from an old copy of a device is refused with the events that followed it', async () => {
  const url = await (await sharedPostgres()).createDatabase('versions');
  const conflicts: DeviceConflict[] = [];
  const a = await openPg({ url, gatewayId: 'gw-a' });
  const b = await openPg({ url, gatewayId: 'gw-b', onConflict: (c) => conflicts.push(...c) });
  a.saveDevice(fullDevice());
  await a.flush();
  const copy = (await b.device(DEVICE_ID))!;
  assert.is(b.lastWriter(DEVICE_ID), 'gw-a');

  // gw-a writes a newer record; gw-b, from its older copy, changes a label and the posture.
  a.saveDevice({ ...copy, posture: 'contraindicated', lastSeen: 5 });
  await a.flush();
  const stale: DeviceRecord = { ...copy, posture: 'stale', labels: { ...copy.labels, room: '9' } };
  b.saveDevice(stale);
  b.addPostureEvent(postureEvent(77));
  await b.flush();

  assert.is(conflicts.length, 1);
  assert.is(conflicts[0]?.id, DEVICE_ID);
  assert.equal(conflicts[0]?.refused, stale);
  assert.equal(conflicts[0]?.baseLabels, copy.labels, 'what the refused write was based on');
  assert.equal(conflicts[0]?.events, [postureEvent(77)]);
  assert.is((await a.device(DEVICE_ID))?.posture, 'contraindicated', 'the newer record stays');
  assert.equal(await a.postureEvents(DEVICE_ID, 10), [], 'the event of the refused write is not stored');

  // Reloaded, gw-b writes on the current version.
  let reloaded: DeviceRecord[] = [];
  await b.reloadDevices([DEVICE_ID], (r) => {
    reloaded = r;
  });
  assert.is(reloaded[0]?.posture, 'contraindicated');
  b.saveDevice({ ...reloaded[0]!, labels: { room: '9' } });
  await b.flush();
  assert.is(conflicts.length, 1, 'no second conflict');
  assert.equal((await a.device(DEVICE_ID))?.labels, { room: '9' });
  assert.is(b.lastWriter(DEVICE_ID), 'gw-b');
});

it('a requested round is taken by one gateway only; one nobody takes is withdrawn as unreachable', async () => {
  const url = await (await sharedPostgres()).createDatabase('requested');
  const a = await openPg({ url, gatewayId: 'gw-a' });
  const b = await openPg({ url, gatewayId: 'gw-b' });
  const c = await openPg({ url, gatewayId: 'gw-c' });
  const other = '0123456789abcdef01234567';
  a.saveDevice(minimalDevice());
  a.saveDevice(minimalDevice(other, `${other}${'0'.repeat(40)}`));
  const asked = [pendingRound(1, DEVICE_ID, 'b1'), pendingRound(2, other, 'b1')];
  for (const r of asked) a.requestRound(r);
  a.saveBatch(batch('b1', [roundId(1), roundId(2)]));
  await a.flush();
  assert.equal(await a.pendingRounds(), [], 'a requested round is not a pending round to re-arm');
  assert.equal(
    (await a.ownRequested()).map((r) => r.id),
    [roundId(1), roundId(2)],
  );

  const now = Date.now();
  const [tookB, tookC] = await Promise.all([
    b.takeRequested([DEVICE_ID], pendingRound(0).issuedAt),
    c.takeRequested([DEVICE_ID], pendingRound(0).issuedAt),
  ]);
  assert.is(tookB.length + tookC.length, 1, 'exactly one gateway took it');
  const taker = tookB.length === 1 ? b : c;
  assert.equal(
    (await taker.pendingRounds()).map((r) => r.id),
    [roundId(1)],
  );

  const withdrawn = await a.withdrawRequested([roundId(1), roundId(2)], now);
  assert.equal(
    withdrawn.map((r) => r.id),
    [roundId(2)],
    'a taken round cannot be withdrawn',
  );
  assert.equal(await a.batch('b1'), { ...batch('b1', [roundId(1)]), unreachable: [other] });
  assert.equal(await b.takeRequested([other], now), [], 'a withdrawn round cannot be taken');
  await a.forgetWithdrawn([roundId(2)], now);
  assert.is(await a.round(roundId(2)), undefined);
});

it('a gateway not seen within its lease has its pending rounds adopted, once; a live one keeps them', async () => {
  const url = await (await sharedPostgres()).createDatabase('adopt');
  const a = await openPg({ url, gatewayId: 'gw-a' });
  const b = await openPg({ url, gatewayId: 'gw-b' });
  const c = await openPg({ url, gatewayId: 'gw-c' });
  assert.equal(await a.heartbeat(300), ['gw-a']);
  await b.heartbeat(300);
  await c.heartbeat(300);
  a.saveDevice(minimalDevice());
  a.saveRound(pendingRound(1));
  a.requestRound(pendingRound(2));
  await a.flush();
  assert.equal(await b.adoptRounds(300), [], 'gw-a is alive');
  await new Promise((r) => setTimeout(r, 400));
  assert.equal(await b.heartbeat(300), ['gw-b']);
  await c.heartbeat(300);
  const [byB, byC] = await Promise.all([b.adoptRounds(300), c.adoptRounds(300)]);
  const adopted = [...byB, ...byC];
  assert.equal(adopted.map((r) => [r.id, r.requested]).sort(), [
    [roundId(1), false],
    [roundId(2), true],
  ]);
  assert.ok(byB.length === 0 || byC.length === 0, 'one gateway adopted them all');
  assert.equal(await a.pendingRounds(), [], 'gw-a, back, finds them adopted');
});

it('a gateway that left is adopted at once', async () => {
  const url = await (await sharedPostgres()).createDatabase('leave');
  const a = await openPg({ url, gatewayId: 'gw-a' });
  const b = await openPg({ url, gatewayId: 'gw-b' });
  await a.heartbeat(60_000);
  a.saveDevice(minimalDevice());
  a.saveRound(pendingRound(1));
  await a.flush();
  await a.leave();
  assert.equal(
    (await b.adoptRounds(60_000)).map((r) => r.id),
    [roundId(1)],
  );
});

it('a rollout is written by its owner only; a dead owner’s is taken over once; starts on a swarm take turns', async () => {
  const url = await (await sharedPostgres()).createDatabase('rollouts');
  const a = await openPg({ url, gatewayId: 'gw-a' });
  const b = await openPg({ url, gatewayId: 'gw-b' });
  const c = await openPg({ url, gatewayId: 'gw-c' });
  for (const s of [a, b, c]) await s.heartbeat(300);
  const r = createRollout(rolloutSpec('r-000000000001', 'line=a'), ['m1', 'm2'], 50);
  await a.createRollout(r, () => {});
  const started = step(r, { kind: 'start' }, { now: 60, newId: () => 'c1', fresh: () => true }).rollout;
  assert.ok(await a.saveOwnedRollout(started), 'its owner writes it');
  assert.not.ok(await b.saveOwnedRollout({ ...started, phase: 'paused' }), 'another gateway cannot');
  assert.equal(await b.rolloutRow(r.spec.id), { rollout: started, owner: 'gw-a' });
  assert.equal(await b.liveRollouts(), [{ rollout: started, owner: 'gw-a' }]);
  assert.equal(await a.ownRollouts(), [started]);
  assert.equal(await b.ownRollouts(), []);

  // A second rollout on the swarm, or on one of its members, is refused under the start lock.
  const refusals: string[] = [];
  const check = (holding: readonly Rollout[]) => {
    refusals.push(holding.map((h) => h.spec.id).join());
    if (holding.length > 0) throw new Error('held');
  };
  const second = createRollout(rolloutSpec('r-000000000002', 'line=a'), ['m1'], 70);
  const refused = await b.createRollout(second, check).then(
    () => 'created',
    (e: Error) => e.message,
  );
  assert.is(refused, 'held');
  assert.equal(refusals, ['r-000000000001']);
  assert.is(await b.rolloutRow('r-000000000002'), undefined);

  assert.equal(await b.adoptRollouts(300), [], 'gw-a is alive');
  await new Promise((res) => setTimeout(res, 400));
  await b.heartbeat(300);
  await c.heartbeat(300);
  const [byB, byC] = await Promise.all([b.adoptRollouts(300), c.adoptRollouts(300)]);
  assert.equal([...byB, ...byC], [started], 'taken over once, as stored');
  const survivor = byB.length > 0 ? b : c;
  assert.ok(await survivor.saveOwnedRollout({ ...started, phase: 'paused' }), 'the survivor writes it');
  assert.not.ok(await a.saveOwnedRollout({ ...started, phase: 'cancelled' }), 'the old owner, back, cannot');
  assert.is((await a.rollout(r.spec.id))?.phase, 'paused');
});

it('an artifact is kept once per SHA-256 and read back in order', async () => {
  const url = await (await sharedPostgres()).createDatabase('artifacts');
  const a = await openPg({ url, gatewayId: 'gw-a' });
  const dir = tempDir('vigil-pg-artifact-');
  try {
    const bytes = new Uint8Array(2.5 * 1024 * 1024).map((_, i) => (i * 7) % 251);
    writeFileSync(join(dir, 'a.tar'), bytes);
    const sha = createHash('sha256').update(bytes).digest('hex');
    assert.is(await a.readArtifact(sha), undefined);
    await a.putArtifact(sha, bytes.length, join(dir, 'a.tar'));
    await a.putArtifact(sha, bytes.length, join(dir, 'a.tar'));
    const stored = (await a.readArtifact(sha))!;
    assert.is(stored.size, bytes.length);
    const chunks: Uint8Array[] = [];
    for await (const chunk of stored.chunks()) chunks.push(chunk);
    assert.equal(chunks.length, 3);
    assert.ok(Buffer.concat(chunks).equals(Buffer.from(bytes)));
  } finally {
    removeDir(dir);
  }
});

it('writes made while the server is away wait and are committed when it is back', async () => {
  const server = await startPostgres();
  try {
    const url = await server.createDatabase('outage');
    const errors: Error[] = [];
    const store = await openPg({ url, onWriteError: (e) => errors.push(e) });
    store.saveDevice(minimalDevice());
    await store.flush();
    await server.halt();
    store.saveRound(pendingRound(1));
    store.admit(EK_HASH);
    const flushed = await store.flush().then(
      () => 'committed',
      (e: Error) => e.message,
    );
    assert.not.equal(flushed, 'committed', 'no server, no commit');
    assert.match(
      errors.map((e) => e.message).join('\n'),
      /a commit failed .* 2 write\(s\) wait and are retried/,
    );
    await server.resume();
    for (let i = 0; i < 100 && store.stats().queued > 0; i++) await new Promise((r) => setTimeout(r, 50));
    await store.flush();
    assert.equal(
      (await store.pendingRounds()).map((r) => r.id),
      [roundId(1)],
    );
    assert.equal(await store.admitted(), [EK_HASH]);
    assert.match(errors.at(-1)?.message ?? '', /commits succeed again/);
  } finally {
    for (const s of opened.splice(0)) await s.close().catch(() => {});
    await server.stop();
  }
});

it.run();
