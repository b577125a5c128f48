import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { ErrorMessage } from '../../shared/protocol/index.ts';
import { type SimFleet, startSimFleet } from '../equipment/sim/fleet.ts';
import { SimDevice } from '../equipment/sim/sim-device.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import { simPolicy } from '../support/sim-devices.ts';

interface Ctx {
  gw?: TestGateway | undefined;
  devices: SimDevice[];
  fleet?: SimFleet | undefined;
}

const it = suite<Ctx>('sim devices against a real gateway', { devices: [] });

const policy = (allowSim: boolean) => simPolicy({ periodicMs: 60_000, deadlineMs: 1500 }, { allowSim });

it.after.each(async (ctx) => {
  await ctx.fleet?.close();
  await Promise.all(ctx.devices.map((d) => d.close()));
  ctx.devices = [];
  ctx.fleet = undefined;
  await ctx.gw?.stop();
  ctx.gw = undefined;
});

function nextError(d: SimDevice, timeoutMs = 5000): Promise<ErrorMessage> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no error message')), timeoutMs);
    d.once('error', (m) => {
      clearTimeout(timer);
      resolve(m);
    });
  });
}

it('is refused with ek-not-admitted when the policy does not allow sim', async (ctx) => {
  ctx.gw = await startTestGateway({ policy: policy(false) });
  const d = SimDevice.create();
  ctx.devices.push(d);
  const error = nextError(d);
  await d.connect(ctx.gw.url, ctx.gw.ca);
  const m = await error;
  assert.is(m.code, 'ek-not-admitted');
  assert.match(m.detail, /allowSim/);
  assert.is(ctx.gw.gateway.fleet.get(d.id), undefined, 'no device record for a refused EK');
});

it('onboards with activation when allowed, then answers on-demand rounds on the same connection', async (ctx) => {
  ctx.gw = await startTestGateway({ policy: policy(true) });
  const d = SimDevice.create();
  ctx.devices.push(d);
  const first = d.nextResult();
  await d.connect(ctx.gw.url, ctx.gw.ca);
  const r = await first;
  assert.is(r.status, 'affirming', r.reasons.join(','));
  const device = ctx.gw.gateway.fleet.get(d.id);
  assert.is(device?.posture, 'affirming');
  assert.ok(device?.ak, 'AK enrolled after software activation');
  assert.is(device?.attester, 'sim');

  const socket = d.socket();
  const [session] = ctx.gw.gateway.connections.of(d.id);
  assert.ok(session);
  const again = d.nextResult();
  ctx.gw.gateway.attestation.start(session, 'on-demand');
  assert.is((await again).status, 'affirming');
  assert.is(d.socket(), socket, 'same TLS connection');
  const rounds = await ctx.gw.gateway.store.recentRounds(d.id, 5);
  assert.is(rounds[0]?.reason, 'on-demand');
  assert.not.ok(rounds[0]?.activate);
});

it('misbehaves on request: wrong binding is refused, silence goes stale', async (ctx) => {
  ctx.gw = await startTestGateway({ policy: policy(true) });
  const relay = SimDevice.create({ wrongBinding: true });
  const mute = SimDevice.create({ silent: true });
  ctx.devices.push(relay, mute);
  const refused = relay.nextResult();
  await relay.connect(ctx.gw.url, ctx.gw.ca);
  const r = await refused;
  assert.is(r.status, 'contraindicated');
  assert.equal(r.reasons, ['binding-mismatch']);

  const stale = nextError(mute, 5000);
  await mute.connect(ctx.gw.url, ctx.gw.ca);
  assert.is((await stale).code, 'stale');
});

it('a fleet connects with bounded concurrency and every device onboards', async (ctx) => {
  ctx.gw = await startTestGateway({ policy: policy(true) });
  ctx.fleet = startSimFleet({ url: ctx.gw.url, ca: ctx.gw.ca, count: 20, concurrency: 4, seedPrefix: 't' });
  await ctx.fleet.ready;
  assert.is(ctx.fleet.refused.length, 0);
  assert.ok(ctx.fleet.devices.every((d) => d.lastResult?.status === 'affirming'));
  assert.is([...ctx.gw.gateway.connections.all()].length, 20);
});

it('reconnects when asked to, with a fresh clientId, and attests again', async (ctx) => {
  ctx.gw = await startTestGateway({ policy: policy(true) });
  const d = SimDevice.create();
  ctx.devices.push(d);
  const first = d.nextResult();
  await d.connect(ctx.gw.url, ctx.gw.ca, { reconnect: { baseMs: 20, capMs: 100 } });
  await first;
  const again = d.nextResult();
  d.socket()?.destroy();
  assert.is((await again).status, 'affirming');
  assert.is(d.connectCount, 2);
});

it.run();
