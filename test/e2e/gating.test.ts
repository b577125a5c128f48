import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Challenge, GatewayMessage, Result } from '../../shared/protocol/index.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import { connectOperator, eventually, settle } from '../support/operator.ts';
import { type Connected, digestOf, ToolsDevice } from '../support/tools-device.ts';

// A device made of tpm2-tools and an MQTT client, against a real gateway: the protocol, not our
// agent, is what the gateway trusts. The same device shows the gating of application traffic.

const SOFTWARE = { name: 'tools-fw', version: '1.0', digest: digestOf('tools-fw 1.0 manifest') };
const ZERO = '0'.repeat(64);

interface Ctx {
  gw?: TestGateway;
  device?: ToolsDevice;
  conn?: Connected;
  op?: Awaited<ReturnType<typeof connectOperator>>;
}
const it = suite<Ctx>('tpm2-tools device and traffic gating');

function expect<T extends GatewayMessage['t']>(m: GatewayMessage, t: T): Extract<GatewayMessage, { t: T }> {
  if (m.t !== t)
    assert.unreachable(`expected ${t}, got ${m.t}: ${JSON.stringify(m.t === 'error' ? m : m.t)}`);
  return m as Extract<GatewayMessage, { t: T }>;
}

it.before(async (ctx) => {
  ctx.gw = await startTestGateway({
    policy: {
      admission: { mode: 'open' },
      pcrs: [9],
      referenceValues: {
        pcrs: { '9': [ZERO] },
        software: [
          {
            name: SOFTWARE.name,
            version: SOFTWARE.version,
            digest: Buffer.from(SOFTWARE.digest).toString('hex'),
          },
        ],
      },
      rounds: { periodicMs: 60_000, deadlineMs: 3000 },
    },
  });
  ctx.device = await ToolsDevice.create({ software: [SOFTWARE] });
  ctx.op = await connectOperator(ctx.gw.url, ctx.gw.ca, ctx.gw.operatorToken);
  await ctx.op.client.subscribeAsync('app/#');
});

it.after(async (ctx) => {
  await ctx.conn?.close();
  await ctx.op?.close();
  await ctx.device?.stop();
  await ctx.gw?.stop();
});

it('before the first appraisal: app publish and subscribe refused, nothing delivered', async (ctx) => {
  const { gw, device, op } = ctx as Required<Ctx>;
  const conn = await device.connect(gw.url, gw.ca);
  ctx.conn = conn;
  await device.send(conn, device.hello());
  const challenge = expect(await conn.next(), 'challenge');
  assert.is(challenge.reason, 'onboard');
  assert.ok(challenge.activate, 'an unknown device is asked to activate');
  assert.equal(challenge.pcrs, [9, 14]);

  assert.is(await conn.subscribe(`app/${device.id}/#`), 128, 'subscription refused before attestation');
  await conn.client.publishAsync(`app/${device.id}/temp`, 'too early');
  await op.client.publishAsync(`app/${device.id}/cmd`, 'hello device');
  await settle();
  assert.equal(
    op.received.map((m) => m.topic),
    [`app/${device.id}/cmd`],
    'the device publish went nowhere',
  );
  assert.is(conn.app.length, 0);
  assert.ok(conn.client.connected, 'a refused publish does not cost the device its connection');

  await device.answer(conn, challenge);
  const result = expect(await conn.next(), 'result');
  assert.is(result.status, 'affirming', result.reasons.join());
  assert.is(gw.gateway.fleet.get(device.id)?.posture, 'affirming');
});

it('after it: app traffic flows both ways on the same connection', async (ctx) => {
  const { device, op, conn } = ctx as Required<Ctx>;
  op.received.length = 0;
  assert.is(await conn.subscribe(`app/${device.id}/#`), 0);
  await conn.client.publishAsync(`app/${device.id}/temp`, '21.5');
  await op.client.publishAsync(`app/${device.id}/cmd`, 'open valve');
  await eventually(
    () => op.received.some((m) => m.topic === `app/${device.id}/temp`),
    'operator receives device data',
  );
  await eventually(() => conn.app.some((m) => m.topic === `app/${device.id}/cmd`), 'device receives command');
});

it('a measured PCR extended outside the policy: contraindicated, and delivery stops at once', async (ctx) => {
  const { gw, device, op, conn } = ctx as Required<Ctx>;
  await device.swtpm.tpm2(['tpm2_pcrextend', `9:sha256=${'ab'.repeat(32)}`]);
  const sessions = gw.gateway.connections.of(device.id);
  assert.is(sessions.length, 1);
  gw.gateway.attestation.start(sessions[0]!, 'on-demand');
  const challenge = expect(await conn.next(), 'challenge') as Challenge;
  assert.is(challenge.activate, undefined, 'an enrolled AK is not activated again');
  await device.answer(conn, challenge);
  const result = expect(await conn.next(), 'result') as Result;
  assert.is(result.status, 'contraindicated');
  assert.equal(result.reasons, ['firmware-changed']);
  assert.is(gw.gateway.fleet.get(device.id)?.posture, 'contraindicated');

  conn.app.length = 0;
  op.received.length = 0;
  await op.client.publishAsync(`app/${device.id}/cmd`, 'must not arrive');
  await conn.client.publishAsync(`app/${device.id}/temp`, 'must not arrive either');
  await settle();
  assert.is(conn.app.length, 0, 'the existing subscription receives nothing');
  assert.equal(
    op.received.map((m) => m.topic),
    [`app/${device.id}/cmd`],
  );
  const round = await gw.gateway.store.round(Buffer.from(challenge.round).toString('hex'));
  assert.equal(round?.codes, ['firmware-changed']);
  assert.match(round?.detail ?? '', /PCR 9/);
});

it('a device that stops answering becomes stale at its deadline', async (ctx) => {
  const { gw, device, conn } = ctx as Required<Ctx>;
  // Back to a good posture first, so that stale is a change.
  await device.resetTpm();
  await device.measure(SOFTWARE.name, SOFTWARE.version, SOFTWARE.digest);
  gw.gateway.attestation.start(gw.gateway.connections.of(device.id)[0]!, 'on-demand');
  const good = expect(await conn.next(), 'challenge');
  await device.answer(conn, good);
  const r = expect(await conn.next(), 'result');
  assert.is(r.status, 'affirming', r.reasons.join());

  gw.gateway.attestation.start(gw.gateway.connections.of(device.id)[0]!, 'on-demand');
  const ignored = expect(await conn.next(), 'challenge');
  const error = expect(await conn.next(5000), 'error');
  assert.is(error.code, 'stale');
  assert.equal(error.round, ignored.round);
  assert.is(gw.gateway.fleet.get(device.id)?.posture, 'stale');
  const events = (await gw.gateway.store.postureEvents(device.id, 5)).map((e) => e.to);
  assert.is(events[0], 'stale');
});

it.run();
