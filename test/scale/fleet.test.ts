import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { GatewayEvent } from '../../gateway/events.ts';
import type { Gateway } from '../../gateway/gateway.ts';
import type { BatchProgress } from '../../gateway/rounds/batches.ts';
import { SimDevice } from '../equipment/sim/sim-device.ts';
import { connectOperator, eventually, settle } from '../support/operator.ts';
import { api, type FleetEnv, health, startFleetEnv, startInProcess } from './support.ts';

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

it("events of one gateway reach the others' live views and retained posture notices", async (ctx) => {
  const heard: GatewayEvent[] = [];
  const stop = ctx.gws[2]!.events.subscribe((e) => heard.push(e));
  const backEnd = await connectOperator(url(ctx, 2), ctx.env.ca, ctx.env.token);
  try {
    await backEnd.client.subscribeAsync('vigil/v1/fleet/#');
    const b = await connect(ctx, 1, 'fleet/b');
    await eventually(
      () =>
        heard.some((e) => e.kind === 'posture' && e.notice.id === b.id && e.notice.posture === 'affirming'),
      "gw3's event stream hears gw2's device turn affirming",
    );
    assert.ok(heard.some((e) => e.kind === 'round' && e.device === b.id && e.round.state === 'appraised'));
    await eventually(
      () =>
        backEnd.received.some((m) => m.topic === `vigil/v1/fleet/${b.id}` && m.payload.includes('affirming')),
      "a back end on gw3 gets the posture notice of gw2's device",
    );
  } finally {
    stop();
    await backEnd.close();
  }
});

it('a label set on a gateway that does not hold the device survives the appraisals of the one that does', async (ctx) => {
  const [gw1, gw3] = [ctx.gws[0]!, ctx.gws[2]!];
  const a = ctx.devices[0]!;
  await api(ctx.env.dirs[2]!, ctx.env.token, 'PATCH', `/v1/devices/${a.id}/labels`, { set: { room: 'lab' } });
  const before = a.resultCount;
  gw1.attestation.start(gw1.connections.attestedOf(a.id)!, 'on-demand');
  await eventually(() => a.resultCount > before, 'gw1 appraises the device again');
  await gw1.store.flush();
  await eventually(
    () => gw1.fleet.get(a.id)?.labels.room === 'lab' && gw3.fleet.get(a.id)?.labels.room === 'lab',
    'both gateways hold the label',
  );
  assert.equal((await gw3.store.device(a.id))?.labels, { room: 'lab' }, 'and so does the store');
});

it('two gateways writing one device at once: the holder keeps what it attested, the label from the other stays', async (ctx) => {
  const [gw1, gw3] = [ctx.gws[0]!, ctx.gws[2]!];
  const a = ctx.devices[0]!;
  const conflicts = () => (gw1.store as unknown as { stats(): { conflicts: number } }).stats().conflicts;
  const before = conflicts();
  // Both from the same version: gw3 must have caught up with what gw1 wrote last (the holder
  // writes the device at every appraisal; gw3 reloads it when the bus says so).
  await gw1.store.flush();
  await eventually(() => {
    const [x, y] = [gw1.fleet.get(a.id)!, gw3.fleet.get(a.id)!];
    return x.lastSeen === y.lastSeen && x.lastRound === y.lastRound;
  }, 'gw3 holds the record gw1 wrote last');
  const on1 = gw1.fleet.get(a.id)!;
  const on3 = gw3.fleet.get(a.id)!;
  // gw3 (an operator) relabels, gw1 (the holder) records a sighting.
  gw3.fleet.save({ ...on3, labels: { room: 'lab-2' } });
  gw1.fleet.save({ ...on1, lastSeen: on1.lastSeen + 1 });
  await gw3.store.flush();
  await gw1.store.flush();
  assert.is(conflicts(), before + 1, "gw1's write was refused: gw3 wrote first");
  await eventually(async () => {
    const stored = await gw3.store.device(a.id);
    return stored?.labels.room === 'lab-2' && stored.lastSeen === on1.lastSeen + 1;
  }, "the merge is stored: gw3's label and gw1's record");
  await eventually(() => gw1.fleet.get(a.id)?.labels.room === 'lab-2', 'gw1 holds the merged record');
});

it('an on-demand batch asked of one gateway appraises devices on all three; it reports the whole batch', async (ctx) => {
  await connect(ctx, 2, 'fleet/c');
  await connect(ctx, 2, 'fleet/d');
  // A record reaches the other gateways through the store and the bus, not with the device's
  // result: "all" means the devices the asked gateway knows when it is asked.
  await eventually(
    () => ctx.devices.every((d) => ctx.gws[0]!.fleet.get(d.id)),
    'gw1 knows the devices enrolled on gw3',
  );
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
    await backEnd.client.subscribeAsync(`app/${a.id}/#`);
    // Device a (gw1) publishes telemetry; the back end on gw3 gets it once gw1 knows its interest.
    await eventually(
      async () => {
        a.publish(`app/${a.id}/temp`, '21.5');
        return backEnd.received.some(
          (m) => m.topic === `app/${a.id}/temp` && m.payload.toString() === '21.5',
        );
      },
      'telemetry from gw1 reaches the back end on gw3',
      5000,
    );

    // The other way: a command from the back end on gw3 to device a on gw1.
    const commands: string[] = [];
    a.on('message', (topic, payload) => {
      if (topic === `app/${a.id}/cmd`) commands.push(payload.toString());
    });
    await a.subscribe(`app/${a.id}/cmd`);
    await eventually(
      async () => {
        await backEnd.client.publishAsync(`app/${a.id}/cmd`, 'open valve');
        return commands.includes('open valve');
      },
      'a command from gw3 reaches the device on gw1',
      5000,
    );

    // Gated where it is delivered: once a's connection is no longer trusted, nothing reaches it.
    ctx.gws[0]!.connections.attestedOf(a.id)!.trustedUntil = 0;
    await backEnd.client.publishAsync(`app/${a.id}/cmd`, 'close valve');
    await settle(500);
    assert.not.ok(commands.includes('close valve'), 'an untrusted connection gets no application traffic');
  } finally {
    await backEnd.close();
  }
});

it('the health port: 200 and who answers while admitting, 404 elsewhere', async (ctx) => {
  const d = ctx.env.dirs[1]!;
  const h = await health(d.healthPort);
  assert.is(h?.status, 200);
  assert.is(h?.body.gateway, 'gw2');
  assert.is(h?.body.bus, 'up');
  assert.equal(h?.body.gateways, ['gw1', 'gw2', 'gw3']);
  const other = await fetch(`http://127.0.0.1:${d.healthPort}/v1/devices`);
  assert.is(other.status, 404);
});

it('a device that enrolled on gw3 a moment ago is found by its id on gw1 at once, before the bus tells of it', async (ctx) => {
  const d = await connect(ctx, 2, 'fleet/e');
  // Asked the moment its first result arrived: the enrolment was committed before that result,
  // and gw1 reads an id it has not heard of from the store rather than answer 404.
  const [view, batch] = await Promise.all([
    api<{ device: { id: string; enrolled: boolean } }>(
      ctx.env.dirs[0]!,
      ctx.env.token,
      'GET',
      `/v1/devices/${d.id}`,
    ),
    api<BatchProgress>(ctx.env.dirs[1]!, ctx.env.token, 'POST', '/v1/batches', { ids: [d.id] }),
  ]);
  assert.is(view.device.id, d.id);
  assert.ok(view.device.enrolled);
  assert.is(batch.devices, 1);
});

it.run();
