import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Gateway } from '../../gateway/gateway.ts';
import type { BatchProgress } from '../../gateway/rounds/batches.ts';
import { SimDevice } from '../equipment/sim/sim-device.ts';
import { connectOperator, eventually, settle } from '../support/operator.ts';
import { api, type FleetEnv, startFleetEnv, startInProcess } from './support.ts';

// Three gateways in this process on one PostgreSQL and one Redis, devices connected to each
// directly: what they share (records, batches, events, application traffic) and the same-id rule
// across them. The balancer, crashes and outages: test/scale/balancer.test.ts.

interface Ctx {
  env: FleetEnv;
  gws: Gateway[];
  devices: SimDevice[];
}
const it = suite<Ctx>('three gateways, one database, one bus');

it.before(async (ctx) => {
  ctx.env = await startFleetEnv({ gateways: 3 });
  ctx.gws = [];
  ctx.devices = [];
  for (const d of ctx.env.dirs) ctx.gws.push(await startInProcess(d));
});

it.after(async (ctx) => {
  await Promise.all(ctx.devices.map((d) => d.close()));
  for (const g of ctx.gws.reverse()) await g.close().catch(() => {});
  await ctx.env?.close();
});

const url = (ctx: Ctx, i: number) => `mqtts://localhost:${ctx.env.dirs[i]!.mqttPort}`;

async function connect(ctx: Ctx, i: number, seed: string): Promise<SimDevice> {
  const d = SimDevice.create({ seed });
  ctx.devices.push(d);
  const first = d.nextResult();
  first.catch(() => {}); // awaited below, unless connect fails first
  await d.connect(url(ctx, i), ctx.env.ca);
  assert.is((await first).status, 'affirming', `${seed} affirmed on gw${i + 1}`);
  return d;
}

it('a device enrolled on one gateway is known to the others, with its result', async (ctx) => {
  const d = await connect(ctx, 0, 'fleet/a');
  await eventually(async () => {
    const view = await api<{ device: { posture: string; enrolled: boolean } }>(
      ctx.env.dirs[2]!,
      ctx.env.token,
      'GET',
      `/v1/devices/${d.id}`,
    ).catch(() => undefined);
    return view?.device.posture === 'affirming' && view.device.enrolled;
  }, 'gw3 shows the device affirming and enrolled');
});

it('a second connection of an attested device is refused at another gateway; the first survives', async (ctx) => {
  const d = ctx.devices[0]!;
  const before = d.resultCount;
  const twin = SimDevice.create({ seed: 'fleet/a' });
  const refused = await twin.connect(url(ctx, 1), ctx.env.ca).then(
    () => 'connected',
    (e: Error) => e.message,
  );
  await twin.close();
  assert.match(refused, /Identifier rejected/i);
  assert.ok(d.connected, 'the attested connection is still up');
  await ctx.gws[0]!.attestation.start(ctx.gws[0]!.connections.attestedOf(d.id)!, 'on-demand');
  await eventually(() => d.resultCount > before, 'the attested connection still answers rounds');
  assert.is(d.lastResult?.status, 'affirming');
});

it('an on-demand batch asked of one gateway appraises devices on all three; it reports the whole batch', async (ctx) => {
  await connect(ctx, 1, 'fleet/b');
  await connect(ctx, 2, 'fleet/c');
  await connect(ctx, 2, 'fleet/d');
  const started = await api<BatchProgress>(ctx.env.dirs[0]!, ctx.env.token, 'POST', '/v1/batches', {
    all: true,
  });
  assert.is(started.devices, 4);
  let p = started;
  await eventually(
    async () => {
      p = await api<BatchProgress>(ctx.env.dirs[0]!, ctx.env.token, 'GET', `/v1/batches/${started.id}`);
      return p.done;
    },
    'the batch completes',
    15_000,
  );
  assert.is(p.answered, 4, JSON.stringify(p.results));
  assert.is(p.appraised.affirming, 4);
  assert.equal(p.results.map((r) => r.state).sort(), ['appraised', 'appraised', 'appraised', 'appraised']);
});

it('a device offline everywhere is unreachable in a fleet batch once every gateway answered', async (ctx) => {
  const gone = ctx.devices.pop()!; // fleet/d
  await gone.close();
  await eventually(() => !ctx.gws[2]!.connections.of(gone.id).length, 'gw3 saw it leave');
  const started = await api<BatchProgress>(ctx.env.dirs[0]!, ctx.env.token, 'POST', '/v1/batches', {
    ids: [gone.id],
  });
  let p = started;
  await eventually(
    async () => {
      p = await api<BatchProgress>(ctx.env.dirs[0]!, ctx.env.token, 'GET', `/v1/batches/${started.id}`);
      return p.done;
    },
    'the batch completes well before the request deadline',
    10_000,
  );
  assert.is(p.unreachable, 1, JSON.stringify(p));
  assert.equal(
    p.results.map((r) => [r.id, r.state]),
    [[gone.id, 'unreachable']],
  );
});

it('application messages cross gateways to subscribers who want them, gated where they are delivered', async (ctx) => {
  const a = ctx.devices[0]!; // on gw1
  const backEnd = await connectOperator(url(ctx, 2), ctx.env.ca, ctx.env.token);
  try {
    backEnd.client.subscribe(`app/${a.id}/#`);
    await settle(300); // its interest reaches gw1
    // Device a (gw1) publishes telemetry; the back end on gw3 gets it.
    await eventually(
      async () => {
        await a.mqtt!.publishAsync(`app/${a.id}/temp`, '21.5');
        return backEnd.received.some(
          (m) => m.topic === `app/${a.id}/temp` && m.payload.toString() === '21.5',
        );
      },
      'telemetry from gw1 reaches the back end on gw3',
      5000,
    );
  } finally {
    await backEnd.close();
  }
});

it.run();
