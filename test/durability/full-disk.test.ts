import { join } from 'node:path';
import Database from 'better-sqlite3';
import pino from 'pino';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { RoundRecord } from '../../gateway/model.ts';
import { SqliteStore, StoreUnavailableError } from '../../gateway/store/sqlite.ts';
import { toHex } from '../../shared/tpm/index.ts';
import { SimDevice } from '../equipment/sim/sim-device.ts';
import { appraisedRound, DEVICE_ID, fullDevice } from '../gateway/fixtures/store-records.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import { eventually, settle } from '../support/operator.ts';
import { connectAffirmedSimDevices, simPolicy } from '../support/sim-devices.ts';
import { mountSmallDisk, type SmallDisk } from './small-disk.ts';

// The gateway's store on a disk that fills up (a 4 MB tmpfs, filled to the last block): devices
// keep being appraised and answered, a new enrolment is never affirmed without being stored, the
// log, GET /v1/health and /metrics say what is wrong, and once the space returns the queued
// writes are committed by themselves, with nothing committed lost.

interface Ctx {
  gw?: TestGateway;
  disk?: SmallDisk;
  devices: SimDevice[];
  logs: string[];
}
const it = suite<Ctx>('the store on a full disk', { devices: [], logs: [] });

it.before(async (ctx) => {
  ctx.gw = await startTestGateway({
    policy: simPolicy({ periodicMs: 600_000, deadlineMs: 3000 }),
    logger: pino({ level: 'info' }, { write: (line: string) => void ctx.logs.push(line) }),
    prepare: (dir, json) => {
      ctx.disk = mountSmallDisk(join(dir, 'store'), 4 * 1024 * 1024);
      json.database = 'store/vigil.db';
    },
  });
});

it.after(async (ctx) => {
  await Promise.all(ctx.devices.map((d) => d.close()));
  await ctx.gw?.gateway.close();
  ctx.disk?.unmount();
  await ctx.gw?.stop();
});

const logged = (ctx: Ctx, text: string) => ctx.logs.some((l) => l.includes(text));

/** An on-demand round on every device; resolves with the round ids and statuses they were told. */
async function attestAll(gw: TestGateway, devices: readonly SimDevice[]) {
  const ids = devices.map((d) => d.id);
  const results = devices.map((d) => d.nextResult());
  gw.gateway.batches.start({ ids }, ids);
  return (await Promise.all(results)).map((r) => ({ round: toHex(r.round), status: r.status }));
}

async function health(gw: TestGateway) {
  const res = await fetch(`http://127.0.0.1:${gw.gateway.apiPort}/v1/health`);
  return { code: res.status, body: (await res.json()) as { status: string; store: Record<string, unknown> } };
}

function committed<T>(gw: TestGateway, read: (db: Database.Database) => T): T {
  const db = new Database(join(gw.dir, 'store/vigil.db'), { readonly: true, fileMustExist: true });
  try {
    return read(db);
  } finally {
    db.close();
  }
}

it('rounds go on, enrolments wait, the failure is reported, and the store recovers with nothing lost', async (ctx) => {
  const gw = ctx.gw!;
  const store = gw.gateway.store;
  await connectAffirmedSimDevices(gw, ctx.devices, 'full', 4);
  await store.flush();
  const aks = () =>
    committed(gw, (db) =>
      db.prepare('SELECT id, hex(ak_name) AS ak FROM devices WHERE ak_name IS NOT NULL ORDER BY id').all(),
    );
  const enrolledBefore = aks();
  assert.is(enrolledBefore.length, 4);
  assert.equal((await health(gw)).code, 200);

  // The disk fills up. Rounds go on; their writes meet it.
  ctx.disk!.fill(16 * 1024);
  const told: { round: string; status: string }[] = [];
  await eventually(
    async () => {
      told.push(...(await attestAll(gw, ctx.devices)));
      await settle(50); // the write-behind commit
      return !store.health().writable;
    },
    'a commit fails on the full disk',
    30_000,
  );
  assert.ok(
    told.every((t) => t.status === 'affirming'),
    'devices were appraised and answered all along',
  );

  // What an operator sees: the log, the health endpoint (no token needed), the metrics.
  assert.ok(logged(ctx, 'the store cannot write'), 'the log says so');
  const down = await health(gw);
  assert.is(down.code, 503);
  assert.is(down.body.status, 'degraded');
  assert.is(down.body.store.writable, false);
  assert.match(String((down.body.store.lastError as { message: string }).message), /full/);
  const metrics = await fetch(`http://127.0.0.1:${gw.gateway.apiPort}/metrics`, {
    headers: { authorization: `Bearer ${gw.operatorToken}` },
  }).then((r) => r.text());
  assert.match(metrics, /^vigil_store_writable 0$/m);

  // Serving what it can: known devices are still appraised, and a batch's progress is answered.
  told.push(...(await attestAll(gw, ctx.devices)));
  assert.ok(told.every((t) => t.status === 'affirming'));
  const batch = gw.gateway.batches.start(
    { all: true },
    ctx.devices.map((d) => d.id),
  );
  const progress = await fetch(`http://127.0.0.1:${gw.gateway.apiPort}/v1/batches/${batch.id}`, {
    headers: { authorization: `Bearer ${gw.operatorToken}` },
  });
  assert.is(progress.status, 200, 'a batch started while the store cannot write is found');
  await eventually(
    async () => (await gw.gateway.batches.progress(batch.id))?.done === true,
    'the batch ends',
  );

  // What it cannot record, it refuses: a new device's enrolment is answered `none`, not affirmed.
  const newcomer = SimDevice.create({ seed: 'full/new' });
  ctx.devices.push(newcomer);
  const first = newcomer.nextResult();
  await newcomer.connect(gw.url, gw.ca);
  assert.is((await first).status, 'none');
  assert.is(gw.gateway.fleet.get(newcomer.id)?.ak, undefined, 'no AK enrolled in memory');
  assert.is(gw.gateway.fleet.get(newcomer.id)?.posture, 'enrolling');
  assert.ok(logged(ctx, 'not affirmed: the gateway could not store the enrolment'));
  assert.ok(store.health().queued > 0);

  // The space returns; the store notices by itself and commits what it queued.
  ctx.disk!.free();
  await eventually(
    () => store.health().writable && store.health().queued === 0,
    'the store recovers',
    30_000,
  );
  assert.ok(logged(ctx, 'the store writes again'));
  const up = await health(gw);
  assert.is(up.code, 200);
  assert.is(up.body.status, 'ok');
  assert.is(up.body.store.dropped, 0);

  // Nothing lost: every round a device was told about is committed with what it was told.
  const rounds = committed(gw, (db) => {
    const get = db.prepare<[string], { status: string | null }>('SELECT status FROM rounds WHERE id = ?');
    return told.map((t) => get.get(t.round)?.status ?? 'missing');
  });
  assert.equal(
    rounds,
    told.map((t) => t.status),
  );
  const newcomerRow = () =>
    committed(gw, (db) =>
      db
        .prepare<[string], { ak: Buffer | null }>('SELECT ak_name AS ak FROM devices WHERE id = ?')
        .get(newcomer.id),
    );
  assert.is(newcomerRow()?.ak, null, 'the refused enrolment was never committed');
  const enrolledAfter = aks();
  assert.equal(
    enrolledAfter.filter((d) => enrolledBefore.some((b) => JSON.stringify(b) === JSON.stringify(d))),
    enrolledBefore,
    'every enrolment of before is intact',
  );

  // The newcomer's next round asks for the activation again and enrols it, stored.
  const challenge = new Promise<boolean>((resolve) =>
    newcomer.once('challenge', (c) => resolve(c.activate !== undefined)),
  );
  const [again] = await attestAll(gw, [newcomer]);
  assert.ok(await challenge, 'the round carries activate');
  assert.is(again?.status, 'affirming');
  assert.ok(newcomerRow()?.ak, 'its AK is committed before it was told affirming');
  assert.is(
    committed(gw, (db) => db.pragma('integrity_check', { simple: true })),
    'ok',
  );
});

it('while it cannot write, the store keeps its bound by dropping routine rounds, oldest first, never state', async (ctx) => {
  const disk = mountSmallDisk(join(ctx.gw!.dir, 'bounded'), 2 * 1024 * 1024);
  const events: string[] = [];
  const store = new SqliteStore(join(disk.dir, 'v.db'), {
    flushDelayMs: 5,
    maxRetryMs: 50,
    maxQueued: 40,
    onHealthChange: (e) => events.push(e.kind),
  });
  try {
    store.saveDevice(fullDevice());
    await store.flush();
    disk.fill(8 * 1024);
    const enrolment = appraisedRound(1);
    store.saveRound(enrolment);
    const routine = (n: number): RoundRecord => ({ ...appraisedRound(n), activate: false });
    let n = 2;
    while (store.health().writable) {
      store.saveRound(routine(n++));
      await settle(10);
    }
    for (let i = 0; i < 100; i++) store.saveRound(routine(n++));
    store.saveDevice({ ...fullDevice(), lastSeen: 42 });
    await store.flush().then(
      () => assert.unreachable('flush resolved on a full disk'),
      (e: Error) => assert.instance(e, StoreUnavailableError),
    );
    const h = store.health();
    assert.ok(h.dropped > 0, 'history was dropped');
    assert.ok(h.queued <= 40, `the queue kept its bound (${h.queued})`);
    assert.equal(events, ['failing', 'shedding']);

    disk.free();
    await eventually(() => store.health().writable, 'the store recovers', 10_000);
    assert.equal(events, ['failing', 'shedding', 'recovered']);
    assert.is((await store.device(DEVICE_ID))?.lastSeen, 42, 'the newest device state is committed');
    assert.ok(await store.round(enrolment.id), 'the enrolment round was kept');
    const last = n - 1;
    assert.ok(await store.round(routine(last).id), 'the newest routine round was kept');
    assert.is(await store.round(routine(2).id), undefined, 'the oldest routine round was dropped');
    const kept = (await store.rounds(Array.from({ length: n - 1 }, (_, i) => routine(i + 1).id))).length;
    assert.is(kept + h.dropped, n - 1, 'every round is either committed or counted as dropped');
  } finally {
    try {
      store.closeNow();
    } finally {
      disk.unmount();
    }
  }
});

it.run();
