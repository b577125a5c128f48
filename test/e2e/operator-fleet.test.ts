import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { DeviceConnection } from '../../gateway/connections/device-connection.ts';
import type { BatchProgress } from '../../gateway/rounds/batches.ts';
import { type SimFleet, startSimFleet } from '../equipment/sim/fleet.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import { eventually } from '../support/operator.ts';
import { gatewayCliAt } from '../support/run.ts';
import { simPolicy } from '../support/sim-devices.ts';

// On-demand attestation of 200 simulated devices (test/equipment/sim: software attesters, each on
// its own TLS 1.3 connection): one round per device on the connection it has, progress while it
// runs, and completion; with one device silent, completion at its deadline and exit code 1.

const COUNT = 200;

interface Ctx {
  gw?: TestGateway;
  fleet?: SimFleet;
}
const it = suite<Ctx>(`on-demand round over ${COUNT} simulated devices`);

async function api<T>(gw: TestGateway, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${gw.gateway.apiPort}${path}`, {
    method,
    headers: { authorization: `Bearer ${gw.operatorToken}`, 'content-type': 'application/json' },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  assert.ok(res.ok, `${method} ${path}: ${res.status}`);
  return (await res.json()) as T;
}

function sessions(ctx: Ctx): Map<string, DeviceConnection | undefined> {
  return new Map(ctx.fleet!.devices.map((d) => [d.id, ctx.gw!.gateway.connections.of(d.id)[0]]));
}

function assertSameConnections(ctx: Ctx, before: Map<string, DeviceConnection | undefined>): void {
  for (const d of ctx.fleet!.devices) {
    const now = ctx.gw!.gateway.connections.of(d.id);
    assert.is(now.length, 1, `${d.id}: one connection`);
    assert.ok(before.get(d.id));
    assert.is(now[0], before.get(d.id), `${d.id}: answered on its existing connection`);
    assert.is(d.connectCount, 1, `${d.id}: never reconnected`);
  }
}

it.before(async (ctx) => {
  ctx.gw = await startTestGateway({ policy: simPolicy({ periodicMs: 600_000, deadlineMs: 2000 }) });
  ctx.fleet = startSimFleet({
    url: ctx.gw.url,
    ca: ctx.gw.ca,
    count: COUNT,
    concurrency: 32,
    seedPrefix: 'op-fleet',
  });
  await ctx.fleet.ready;
  assert.equal(ctx.fleet.refused, []);
});

it.after(async (ctx) => {
  await ctx.fleet?.close();
  await ctx.gw?.stop();
});

it('every device answers on its existing connection; progress is reported until the batch completes', async (ctx) => {
  const gw = ctx.gw!;
  const fleet = ctx.fleet!;
  const before = sessions(ctx);
  const results = new Map(fleet.devices.map((d) => [d.id, d.resultCount]));
  const started = await api<BatchProgress>(gw, 'POST', '/v1/batches', { all: true });
  assert.is(started.issued, COUNT);
  assert.is(started.unreachable, 0);

  const seen: BatchProgress[] = [started];
  let p = started;
  while (!p.done) {
    await new Promise((r) => setTimeout(r, 20));
    p = await api<BatchProgress>(gw, 'GET', `/v1/batches/${started.id}`);
    seen.push(p);
  }
  // Progress only moves forward, and adds up at every step.
  for (const [i, s] of seen.entries()) {
    assert.is(s.answered + s.stale + s.abandoned + s.pending, COUNT);
    if (i > 0) assert.ok(s.answered >= seen[i - 1]!.answered);
  }
  assert.is(p.answered, COUNT);
  assert.is(p.appraised.affirming, COUNT);
  assert.is(p.pending, 0);
  assertSameConnections(ctx, before);
  // The batch counts a round once it is appraised; the result reaches the device just after.
  await eventually(
    () => fleet.devices.every((d) => d.resultCount === results.get(d.id)! + 1),
    'every device received one more result',
  );
});

it('a device that does not answer ends stale; the batch completes at its deadline and attest exits 1', async (ctx) => {
  const gw = ctx.gw!;
  const fleet = ctx.fleet!;
  const silent = fleet.devices[7]!;
  silent.silent = true;
  const before = sessions(ctx);
  const run = await gatewayCliAt(['attest', '--all', '--json'], { dir: gw.dir, apiPort: gw.gateway.apiPort });
  assert.is(run.code, 1, run.stderr);
  const p = JSON.parse(run.stdout) as BatchProgress;
  assert.is(p.done, true);
  assert.is(p.appraised.affirming, COUNT - 1);
  assert.is(p.stale, 1);
  const r = p.results.find((x) => x.id === silent.id);
  const round = (await gw.gateway.store.round(r!.round!))!;
  assert.ok(p.completedAt! >= round.deadlineAt, 'completed when the silent device passed its deadline');
  assert.equal([r?.state, r?.codes], ['stale', ['stale']]);
  assert.is(gw.gateway.fleet.get(silent.id)?.posture, 'stale');
  assertSameConnections(ctx, before);
});

it.run();
