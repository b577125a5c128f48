import type pg from 'pg';
import { createClient } from 'redis';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { BatchProgress } from '../../gateway/rounds/batches.ts';
import type { Challenge } from '../../shared/protocol/index.ts';
import { SimDevice } from '../equipment/sim/sim-device.ts';
import { startHaproxy, type TestHaproxy } from '../support/haproxy.ts';
import { eventually, settle } from '../support/operator.ts';
import { sql as query } from '../support/postgres.ts';
import { api, type FleetEnv, type GatewayProcess, spawnGateway, startFleetEnv } from './support.ts';

// Three gateway processes (the CLI) behind a real HAProxy in TCP mode, on one PostgreSQL and one
// Redis, devices connecting through the balancer. In order: a device drained from its gateway
// moves to another without a second activation; a fleet round asked of one gateway covers all
// three; a gateway killed with SIGKILL loses nothing and appraises nothing twice; the control bus
// stopped and started again delays a fleet round and loses none of it.

const RECONNECT = { reconnect: { baseMs: 100, capMs: 800 } } as const;
const DEADLINE_MS = 3000;

interface Ctx {
  env: FleetEnv;
  gws: (GatewayProcess | undefined)[];
  lb: TestHaproxy;
  devices: SimDevice[];
  challenges: Map<SimDevice, Challenge[]>;
}
const it = suite<Ctx>('three gateway processes behind HAProxy');

it.before(async (ctx) => {
  ctx.env = await startFleetEnv({ gateways: 3, rounds: { periodicMs: 60_000, deadlineMs: DEADLINE_MS } });
  ctx.devices = [];
  ctx.challenges = new Map();
  ctx.gws = await Promise.all(ctx.env.dirs.map((d) => spawnGateway(d)));
  ctx.lb = await startHaproxy(
    ctx.env.dirs.map((d) => ({ name: d.name, port: d.mqttPort, healthPort: d.healthPort })),
  );
  await eventually(
    async () => (await Promise.all(ctx.env.dirs.map((d) => ctx.lb.status(d.name)))).every((s) => s === 'UP'),
    'HAProxy sees three healthy gateways',
    10_000,
  );
});

it.after.each(async (ctx) => {
  if (process.env.VIGIL_SCALE_LOGS)
    for (const g of ctx.gws) if (g) process.stdout.write(`\n--- ${g.d.name}\n${g.log()}`);
});

it.after(async (ctx) => {
  await Promise.all(ctx.devices.map((d) => d.close()));
  await ctx.lb?.stop();
  await Promise.all(ctx.gws.map((g) => g?.kill('SIGTERM')));
  await ctx.env?.close();
});

const lbUrl = (ctx: Ctx) => `mqtts://localhost:${ctx.lb.port}`;

/** A sim device through the balancer, reconnecting on its own, every challenge kept. */
function simDevice(ctx: Ctx, seed: string): SimDevice {
  const d = SimDevice.create({ seed });
  ctx.devices.push(d);
  const seen: Challenge[] = [];
  ctx.challenges.set(d, seen);
  d.on('challenge', (c) => seen.push(c));
  return d;
}

async function connectAffirmed(ctx: Ctx, d: SimDevice): Promise<void> {
  const first = d.nextResult(15_000);
  await d.connect(lbUrl(ctx), ctx.env.ca, RECONNECT);
  assert.is((await first).status, 'affirming', `${d.id} affirmed`);
}

/** The gateways holding a connection of the device, by their APIs. */
async function whereIs(ctx: Ctx, id: string): Promise<string[]> {
  const out: string[] = [];
  for (const [i, d] of ctx.env.dirs.entries()) {
    if (!ctx.gws[i]) continue;
    const v = await api<{ device: { connections: number } }>(
      d,
      ctx.env.token,
      'GET',
      `/v1/devices/${id}`,
    ).catch(() => undefined);
    if ((v?.device.connections ?? 0) > 0) out.push(d.name);
  }
  return out;
}

function sql<R extends pg.QueryResultRow>(ctx: Ctx, text: string, values: unknown[] = []): Promise<R[]> {
  return query<R>(ctx.env.database, text, values);
}

async function batchOn(ctx: Ctx, gw: number, selector: object, timeoutMs = 20_000): Promise<BatchProgress> {
  const d = ctx.env.dirs[gw]!;
  const started = await api<BatchProgress>(d, ctx.env.token, 'POST', '/v1/batches', selector);
  let p = started;
  await eventually(
    async () => {
      p = await api<BatchProgress>(d, ctx.env.token, 'GET', `/v1/batches/${started.id}`);
      return p.done;
    },
    `batch ${started.id} on ${d.name} completes`,
    timeoutMs,
  );
  return p;
}

it('a device enrolled through gw1, drained from it, is appraised on gw2 without a second activation; gw3 shows it', async (ctx) => {
  await ctx.lb.admin(`set server ${ctx.lb.backend}/gw2 state maint`);
  await ctx.lb.admin(`set server ${ctx.lb.backend}/gw3 state maint`);
  const d = simDevice(ctx, 'lb/moving');
  await connectAffirmed(ctx, d);
  assert.equal(await whereIs(ctx, d.id), ['gw1']);
  assert.ok(ctx.challenges.get(d)![0]?.activate, 'enrolment: the first round activated the AK');
  const [enrolled] = await sql<{ ak_enrolled_at: number }>(
    ctx,
    'SELECT ak_enrolled_at FROM devices WHERE id = $1',
    [d.id],
  );

  // gw2 ready, gw3 still out: the balancer has one place to send the device when gw1 drains.
  await ctx.lb.ready('gw2');
  await eventually(async () => (await ctx.lb.status('gw2')) === 'UP', 'gw2 back in rotation');
  const moved = d.nextResult(15_000);
  const connects = d.connectCount;
  await ctx.lb.drain('gw1');
  const result = await moved;
  assert.ok(d.connectCount > connects, 'the device reconnected');
  assert.is(result.status, 'affirming');
  assert.equal(await whereIs(ctx, d.id), ['gw2']);
  const onboard = ctx.challenges.get(d)!.at(-1)!;
  assert.is(onboard.reason, 'onboard');
  assert.is(onboard.activate, undefined, 'gw2 knew the AK: no second activation');
  const [after] = await sql<{ ak_enrolled_at: number }>(
    ctx,
    'SELECT ak_enrolled_at FROM devices WHERE id = $1',
    [d.id],
  );
  assert.is(after?.ak_enrolled_at, enrolled?.ak_enrolled_at, 'the enrolment stands');

  const round = Buffer.from(result.round).toString('hex');
  await eventually(async () => {
    const v = await api<{ device: { posture: string; lastRound: { id: string } | null } }>(
      ctx.env.dirs[2]!,
      ctx.env.token,
      'GET',
      `/v1/devices/${d.id}`,
    );
    return v.device.posture === 'affirming' && v.device.lastRound?.id === round;
  }, "gw3's API shows the device's result from gw2");
  const [owner] = await sql<{ owner: string }>(ctx, 'SELECT owner FROM rounds WHERE id = $1', [round]);
  assert.is(owner?.owner, 'gw2');

  await ctx.lb.ready('gw1');
  await ctx.lb.ready('gw3');
  await eventually(
    async () => (await Promise.all(['gw1', 'gw3'].map((s) => ctx.lb.status(s)))).every((s) => s === 'UP'),
    'gw1 and gw3 back in rotation',
  );
});

it('an on-demand round asked of gw1 appraises devices connected to all three; gw1 reports the whole batch', async (ctx) => {
  for (let i = 0; i < 9; i++) await connectAffirmed(ctx, simDevice(ctx, `lb/fleet-${i}`));
  const spread = new Set((await Promise.all(ctx.devices.map((d) => whereIs(ctx, d.id)))).flat());
  assert.equal([...spread].sort(), ['gw1', 'gw2', 'gw3'], 'leastconn spread the devices over all three');
  // "all" is what the asked gateway knows: records enrolled elsewhere reach it through the bus.
  await eventually(async () => {
    const known = await Promise.all(
      ctx.devices.map((d) =>
        api(ctx.env.dirs[0]!, ctx.env.token, 'GET', `/v1/devices/${d.id}`).then(
          () => true,
          () => false,
        ),
      ),
    );
    return known.every(Boolean);
  }, 'gw1 knows every device');
  const p = await batchOn(ctx, 0, { all: true });
  assert.is(p.devices, ctx.devices.length);
  assert.is(
    p.appraised.affirming,
    ctx.devices.length,
    JSON.stringify(p.results.filter((r) => r.status !== 'affirming')),
  );
  const owners = await sql<{ owner: string; n: number }>(
    ctx,
    'SELECT owner, count(*)::int AS n FROM rounds WHERE batch_id = $1 GROUP BY owner ORDER BY owner',
    [p.id],
  );
  assert.equal(
    owners.map((o) => o.owner),
    ['gw1', 'gw2', 'gw3'],
    'each gateway appraised the devices it holds',
  );
});

it('a second connection of an attested device, arriving at another gateway, is refused there; the first survives', async (ctx) => {
  const d = ctx.devices[ctx.devices.length - 1]!;
  const [holder] = await whereIs(ctx, d.id);
  const other = ctx.env.dirs.find((g) => g.name !== holder)!;
  const twin = SimDevice.create({ seed: 'lb/fleet-8' });
  assert.is(twin.id, d.id);
  const refused = await twin.connect(`mqtts://localhost:${other.mqttPort}`, ctx.env.ca).then(
    () => 'connected',
    (e: Error) => e.message,
  );
  await twin.close();
  assert.match(refused, /Identifier rejected/i, `refused by ${other.name}`);
  assert.ok(d.connected);
  assert.equal(await whereIs(ctx, d.id), [holder]);
  const p = await batchOn(ctx, 0, { ids: [d.id] });
  assert.is(p.appraised.affirming, 1, 'the attested connection still answers, through its gateway');
});

it('kill -9 of gw1: its devices reconnect elsewhere, its claims lapse, nothing is lost or appraised twice', async (ctx) => {
  const onGw1: SimDevice[] = [];
  for (const d of ctx.devices) if ((await whereIs(ctx, d.id)).includes('gw1')) onGw1.push(d);
  assert.ok(onGw1.length >= 2, `devices on gw1: ${onGw1.length}`);
  // Rounds in flight on gw1 when it dies: a silent device and an on-demand round.
  const silent = onGw1[0]!;
  silent.silent = true;
  await api(ctx.env.dirs[0]!, ctx.env.token, 'POST', '/v1/batches', { ids: [silent.id] });
  await eventually(
    async () =>
      (
        await sql(ctx, "SELECT 1 FROM rounds WHERE owner = 'gw1' AND state = 'pending' AND device_id = $1", [
          silent.id,
        ])
      ).length > 0,
    'a round in flight on gw1',
  );
  await settle(100); // past the store's write-behind delay
  const before = {
    devices: await sql<{ id: string; ak: string; at: number }>(
      ctx,
      "SELECT id, encode(ak_name, 'hex') AS ak, ak_enrolled_at AS at FROM devices ORDER BY id",
    ),
    rounds: await sql<{ id: string; state: string }>(ctx, 'SELECT id, state FROM rounds ORDER BY id'),
    events: await sql<{ seq: number }>(ctx, 'SELECT seq FROM posture_events ORDER BY seq'),
    pending: await sql<{ id: string }>(
      ctx,
      "SELECT id FROM rounds WHERE owner = 'gw1' AND state = 'pending'",
    ),
  };
  const counts = new Map(ctx.devices.map((d) => [d, d.resultCount]));

  await ctx.gws[0]!.kill('SIGKILL');
  ctx.gws[0] = undefined;
  silent.silent = false;

  await eventually(
    async () => {
      for (const d of onGw1) {
        if (d.resultCount <= counts.get(d)! || d.lastResult?.status !== 'affirming') return false;
        const where = await whereIs(ctx, d.id);
        if (where.length !== 1 || where[0] === 'gw1') return false;
      }
      return true;
    },
    "gw1's devices re-attest on gw2 or gw3",
    30_000,
  );
  const redis = createClient({ url: ctx.env.redis.url });
  await redis.connect();
  try {
    for (const d of ctx.devices) {
      const holder = await redis.get(`vigil:claim:${d.id}`);
      assert.ok(holder === 'gw2' || holder === 'gw3', `${d.id} is claimed by ${holder}`);
    }
  } finally {
    await redis.quit();
  }

  // The rounds gw1 had in flight are adopted and settle at their deadlines, unanswered.
  await eventually(
    async () =>
      (
        await sql(ctx, "SELECT 1 FROM rounds WHERE id = ANY($1) AND state = 'pending'", [
          before.pending.map((p) => p.id),
        ])
      ).length === 0,
    "gw1's pending rounds settled by a survivor",
    DEADLINE_MS + 10_000,
  );
  const settled = await sql<{ id: string; state: string; owner: string }>(
    ctx,
    'SELECT id, state, owner FROM rounds WHERE id = ANY($1)',
    [before.pending.map((p) => p.id)],
  );
  for (const r of settled) {
    assert.ok(r.state === 'abandoned' || r.state === 'stale', `${r.id} ${r.state}: never appraised`);
    assert.ok(r.owner === 'gw2' || r.owner === 'gw3', `${r.id} adopted by ${r.owner}`);
  }

  const devices = await sql<{ id: string; ak: string; at: number }>(
    ctx,
    "SELECT id, encode(ak_name, 'hex') AS ak, ak_enrolled_at AS at FROM devices ORDER BY id",
  );
  assert.equal(devices, before.devices, 'every enrolment kept, no AK activated again');
  const rounds = new Map(
    (await sql<{ id: string; state: string }>(ctx, 'SELECT id, state FROM rounds')).map((r) => [
      r.id,
      r.state,
    ]),
  );
  for (const r of before.rounds) {
    assert.ok(rounds.has(r.id), `round ${r.id} kept`);
    if (r.state !== 'pending') assert.is(rounds.get(r.id), r.state, `settled round ${r.id} unchanged`);
  }
  const events = new Set(
    (await sql<{ seq: number }>(ctx, 'SELECT seq FROM posture_events')).map((e) => e.seq),
  );
  assert.ok(
    before.events.every((e) => events.has(e.seq)),
    'every posture event kept',
  );
  const [dup] = await sql<{ n: number }>(
    ctx,
    `SELECT count(*)::int AS n FROM (SELECT device_id, round FROM posture_events WHERE round IS NOT NULL
       GROUP BY device_id, round, to_posture HAVING count(*) > 1) d`,
  );
  assert.is(dup?.n, 0, 'no posture change recorded twice');
});

it('Redis stopped: local rounds complete; started again: the fleet round asked meanwhile completes', async (ctx) => {
  // gw1 back (it finds its rounds adopted), then the bus goes away.
  ctx.gws[0] = await spawnGateway(ctx.env.dirs[0]!);
  const byGw = new Map<string, SimDevice[]>();
  for (const d of ctx.devices)
    for (const g of await whereIs(ctx, d.id)) byGw.set(g, [...(byGw.get(g) ?? []), d]);
  const [asker, askerDevices] = [...byGw.entries()].sort((a, b) => a[0].localeCompare(b[0]))[0]!;
  const askerIndex = ctx.env.dirs.findIndex((d) => d.name === asker);
  await ctx.env.redis.stop();

  // Local: a batch of the asker's own devices completes with the bus down.
  const local = await batchOn(ctx, askerIndex, { ids: askerDevices.map((d) => d.id) });
  assert.is(local.appraised.affirming, askerDevices.length);

  // Fleet-wide, asked while the bus is down: the asker's devices now, the others' later.
  const started = await api<BatchProgress>(ctx.env.dirs[askerIndex]!, ctx.env.token, 'POST', '/v1/batches', {
    all: true,
  });
  await settle(1500);
  const meanwhile = await api<BatchProgress>(
    ctx.env.dirs[askerIndex]!,
    ctx.env.token,
    'GET',
    `/v1/batches/${started.id}`,
  );
  assert.not.ok(meanwhile.done, 'the other gateways cannot hear of it yet');
  assert.ok(meanwhile.pending > 0);

  await ctx.env.redis.start();
  let p = meanwhile;
  await eventually(
    async () => {
      p = await api<BatchProgress>(
        ctx.env.dirs[askerIndex]!,
        ctx.env.token,
        'GET',
        `/v1/batches/${started.id}`,
      );
      return p.done;
    },
    'the fleet round completes once the bus is back',
    20_000,
  );
  assert.is(
    p.appraised.affirming,
    ctx.devices.length,
    JSON.stringify(p.results.filter((r) => r.status !== 'affirming')),
  );
});

it.run();
