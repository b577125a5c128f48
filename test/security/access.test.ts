import { randomBytes } from 'node:crypto';
import mqtt from 'mqtt';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { deviceIdentity, topics } from '../../shared/protocol/index.ts';
import { toHex } from '../../shared/tpm/index.ts';
import type { TestGateway } from '../support/gateway.ts';
import { connectOperator, eventually, settle } from '../support/operator.ts';
import { type Connected, digestOf, type ToolsDevice } from '../support/tools-device.ts';
import { countArrivals, deviceState, expectError, expectMessage } from './support.ts';
import {
  answerAffirmed,
  createDevice,
  honestRound,
  onDemandRound,
  reboot,
  SOFTWARE,
  startOpenGateway,
} from './testbed.ts';

// Gating and topic ACLs (PROTOCOL.md §1): traffic before attestation and after trust lapses, a
// second connection of the same id, and every way out of a device's own topics.

const DEADLINE_MS = 1500;
type Operator = Awaited<ReturnType<typeof connectOperator>>;

interface Ctx {
  gw: TestGateway;
  device: ToolsDevice;
  a: Connected;
  op: Operator;
  /** A connection under another (never attested) device id, to see what leaks to it. */
  other: Connected;
  otherId: string;
  extra: Connected[];
}
const it = suite<Ctx>('gating and ACL escapes');

it.before(async (ctx) => {
  ctx.extra = [];
  ctx.gw = await startOpenGateway({ deadlineMs: DEADLINE_MS });
  ctx.device = await createDevice();
  ctx.op = await connectOperator(ctx.gw.url, ctx.gw.ca, ctx.gw.operatorToken);
  await ctx.op.client.subscribeAsync(['app/#', 'vigil/v1/fleet/#']);
  ctx.otherId = deviceIdentity(new Uint8Array(randomBytes(64))).deviceId;
  ctx.other = await ctx.device.connect(ctx.gw.url, ctx.gw.ca, { username: ctx.otherId });
});

it.after(async (ctx) => {
  for (const c of [ctx.a, ctx.other, ...(ctx.extra ?? [])]) await c?.close().catch(() => undefined);
  await ctx.op?.close();
  await ctx.device?.stop();
  await ctx.gw?.stop();
});

/** Connects once with this clientId and returns the CONNACK return code (0: accepted). */
async function connackOf(gw: TestGateway, username: string, clientId: string): Promise<number> {
  const c = mqtt.connect(gw.url, { ca: gw.ca, protocolVersion: 4, clientId, username, reconnectPeriod: 0 });
  const code = await new Promise<number>((resolve) => {
    c.once('connect', () => resolve(0));
    c.on('error', (e) => resolve((e as { code?: number }).code ?? -1));
  });
  c.end(true);
  return code;
}

const appTopic = (ctx: Ctx) => `app/${ctx.device.id}/data`;

/** Whether app traffic flows both ways on `c` right now. */
async function appFlows(ctx: Ctx, c: Connected): Promise<{ up: boolean; down: boolean }> {
  const tag = toHex(randomBytes(4));
  c.app.length = 0;
  await c.client.publishAsync(appTopic(ctx), `up-${tag}`);
  await ctx.op.client.publishAsync(`app/${ctx.device.id}/cmd`, `down-${tag}`);
  await settle(250);
  return {
    up: ctx.op.received.some((m) => m.payload.toString() === `up-${tag}`),
    down: c.app.some((m) => m.payload.toString() === `down-${tag}`),
  };
}

it('before the first appraisal: no app publish, subscribe or delivery; then both ways', async (ctx) => {
  const { gw, device } = ctx;
  ctx.a = await device.connect(gw.url, gw.ca, { suffix: 'a' });
  const a = ctx.a;
  // Before hello, and between hello and the evidence.
  assert.is(await a.subscribe(`app/${device.id}/#`), 128);
  assert.equal(await appFlows(ctx, a), { up: false, down: false });
  await device.send(a, device.hello());
  const challenge = expectMessage(await a.next(), 'challenge');
  assert.is(await a.subscribe(`app/${device.id}/#`), 128);
  assert.equal(await appFlows(ctx, a), { up: false, down: false });
  await device.answer(a, challenge);
  assert.is(expectMessage(await a.next(), 'result').status, 'affirming');
  assert.is(await a.subscribe(`app/${device.id}/#`), 0);
  assert.equal(await appFlows(ctx, a), { up: true, down: true });
});

it('a second connection of the same id: no takeover, no disturbance, none of its messages', async (ctx) => {
  const { gw, device, a } = ctx;
  const before = await deviceState(gw, device.id);
  // The same clientId: refused (CONNACK 2), the attested connection stays.
  assert.is(await connackOf(gw, device.id, `${device.id}.a`), 2, 'CONNACK 2: identifier rejected');
  await settle(100);
  assert.ok(a.client.connected, 'a takeover attempt does not evict the attested connection');
  // A fresh suffix: admitted to attest, but it receives nothing of A's.
  const b = await device.connect(gw.url, gw.ca, { suffix: 'b' });
  ctx.extra.push(b);
  assert.is(await b.subscribe(`app/${device.id}/#`), 128);
  await device.send(b, device.hello());
  const bChallenge = expectMessage(await b.next(), 'challenge');
  const aChallenge = await onDemandRound(gw, device, a);
  assert.not.equal(toHex(aChallenge.round), toHex(bChallenge.round));
  await answerAffirmed(device, a, aChallenge);
  assert.equal(await appFlows(ctx, a), { up: true, down: true });
  assert.is(b.app.length, 0, 'no app message reached the second connection');
  // B lets its round lapse: an error for B only, the device keeps its posture.
  assert.is(expectMessage(await b.next(DEADLINE_MS + 3000), 'error').code, 'stale');
  assert.is(await countArrivals(a, topics.in(device.id), 300), 0, 'A received none of B’s messages');
  const after = await deviceState(gw, device.id);
  assert.equal({ ...after, clock: before.clock, swLog: before.swLog, expires: 0 }, { ...before, expires: 0 });
  assert.is(after.posture, 'affirming');
  assert.ok(a.client.connected);
  await b.close();
});

it("another device's in/out, wildcards, $SYS, fleet: subscriptions refused (SUBACK 0x80)", async (ctx) => {
  const { device, a, op, otherId } = ctx;
  const id = device.id;
  for (const filter of [
    topics.in(otherId),
    topics.out(otherId),
    topics.out(id),
    '#',
    '+/+/in',
    '+/+/+',
    `vigil/v1/+/in`,
    'vigil/v1/#',
    `vigil/v1/${id}/#`,
    `vigil/v1/fleet/${id}`,
    '$SYS/#',
    '$SYS/+/clients/connected',
    'app/#',
    'app/+/data',
    `app/${otherId}/#`,
    `+/${id}/data`,
  ]) {
    assert.is(await a.subscribe(filter), 128, `device subscribing to ${filter}`);
  }
  for (const filter of ['#', topics.in(id), topics.out(id), 'vigil/v1/+/in', '+/v1/fleet/x', '$SYS/#']) {
    const granted = await op.client.subscribeAsync(filter).then(
      (g) => g[0]?.qos ?? 128,
      () => 128,
    );
    assert.is(granted, 128, `operator subscribing to ${filter}`);
  }
  assert.ok(a.client.connected);
});

it('publishing as another device, into its in, retained on vigil/v1/#, to $ topics: delivered to nobody', async (ctx) => {
  const { gw, device, a, op, other, otherId } = ctx;
  const before = await deviceState(gw, device.id);
  op.received.length = 0;
  other.app.length = 0;
  const arrivals = Promise.all([
    countArrivals(other, topics.in(otherId), 700),
    countArrivals(a, topics.in(device.id), 700),
  ]);
  // A challenge forged into another device's `in`, and messages forged into its `out`.
  await a.client.publishAsync(topics.in(otherId), Buffer.from('forged'));
  await a.client.publishAsync(topics.out(otherId), Buffer.from('forged'));
  await a.client.publishAsync(`app/${otherId}/cmd`, 'forged');
  await a.client.publishAsync('$SYS/broker/uptime', 'forged');
  // Retained on its own out (consumed otherwise) and on the fleet topic (a forged posture).
  await a.client.publishAsync(topics.out(device.id), Buffer.from('retained'), { retain: true });
  await a.client.publishAsync(topics.fleet(device.id), '{"posture":"affirming"}', { retain: true });
  await op.client.publishAsync(topics.in(device.id), 'operator forging a challenge');
  const [toOther, toA] = await arrivals;
  assert.is(toOther, 0, 'nothing arrived on the other device’s in');
  assert.is(toA, 0, 'the operator cannot write into a device’s in');
  assert.is(other.app.length, 0);
  assert.equal(
    op.received.map((m) => m.topic),
    [],
    'the operator saw none of it',
  );
  // A new subscriber to the fleet topic gets only the gateway's retained posture.
  const late = await connectOperator(gw.url, gw.ca, gw.operatorToken);
  await late.client.subscribeAsync(topics.fleet(device.id));
  await eventually(() => late.received.length > 0, 'the retained posture');
  await settle(100);
  assert.is(late.received.length, 1);
  assert.is(JSON.parse(late.received[0]!.payload.toString()).id, device.id);
  await late.close();
  assert.equal(await deviceState(gw, device.id), before);
  assert.is(gw.gateway.fleet.get(otherId), undefined, 'nothing was appraised for the other id');
  assert.ok(a.client.connected, 'refused publishes cost no connection');
});

it('oversized topic names: 64 KiB and 1,000 levels refused, the broker serves on', async (ctx) => {
  const { gw, device, a } = ctx;
  const raw = mqtt.connect(gw.url, {
    ca: gw.ca,
    protocolVersion: 4,
    clientId: `${device.id}.big`,
    username: device.id,
    reconnectPeriod: 0,
  });
  await new Promise<void>((resolve, reject) => raw.once('connect', () => resolve()).once('error', reject));
  raw.on('error', () => undefined);
  const long = `app/${device.id}/${'x'.repeat(65_000)}`;
  const deep = `app/${device.id}/${'a/'.repeat(1000)}z`;
  for (const t of [long, deep]) {
    raw.publish(t, 'x');
    raw.subscribe(t, () => undefined);
  }
  await settle(300);
  raw.end(true);
  // The attested device is still served both ways.
  assert.equal(await appFlows(ctx, a), { up: true, down: true });
  await honestRound(gw, device, a);
});

it('after contraindicated: delivery stops at once, existing subscriptions included', async (ctx) => {
  const { gw, device, a } = ctx;
  await device.measure(SOFTWARE.name, '6.6.6', digestOf('not a release'));
  await device.answer(a, await onDemandRound(gw, device, a));
  assert.equal(expectMessage(await a.next(), 'result').reasons, ['sw-not-allowed']);
  assert.equal(await appFlows(ctx, a), { up: false, down: false });
  assert.is(await a.subscribe(`app/${device.id}/more`), 128);
});

it('after stale: delivery stops at the deadline', async (ctx) => {
  const { gw, device, a } = ctx;
  await reboot(device);
  await honestRound(gw, device, a);
  assert.equal(await appFlows(ctx, a), { up: true, down: true });
  await onDemandRound(gw, device, a);
  await expectError(a, 'stale', DEADLINE_MS + 3000);
  assert.is(gw.gateway.fleet.get(device.id)?.posture, 'stale');
  assert.equal(await appFlows(ctx, a), { up: false, down: false });
});

it.run();
