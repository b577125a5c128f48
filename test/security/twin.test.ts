import mqtt, { type MqttClient } from 'mqtt';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  decodeGatewayMessage,
  encodeMessage,
  type GatewayMessage,
  type Hello,
  topics,
} from '../../shared/protocol/index.ts';
import { simKeys } from '../equipment/sim/keys.ts';
import { SimDevice } from '../equipment/sim/sim-device.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import { eventually } from '../support/operator.ts';
import { simPolicy } from '../support/sim-devices.ts';

// A twin: anyone can open a connection with a device's id and replay the device's hello, which is
// public (EK and AK public areas). The twin cannot answer a round (it has no AK), but it must not
// be able to capture one meant for the device, nor change what the gateway records of the device.

interface Ctx {
  gw?: TestGateway;
  honest?: SimDevice;
  twins: MqttClient[];
}
const it = suite<Ctx>('a twin of an attested device', { twins: [] });

it.before(async (ctx) => {
  ctx.gw = await startTestGateway({ policy: simPolicy({ periodicMs: 600_000, deadlineMs: 1500 }) });
  ctx.honest = SimDevice.create({ seed: 'twin/honest' });
  const first = ctx.honest.nextResult();
  await ctx.honest.connect(ctx.gw.url, ctx.gw.ca, { suffix: 'honest' });
  assert.is((await first).status, 'affirming');
});

it.after(async (ctx) => {
  for (const t of ctx.twins) t.end(true);
  await ctx.honest?.close();
  await ctx.gw?.stop();
});

async function operatorApi(gw: TestGateway, method: string, path: string, body?: unknown) {
  const res = await fetch(`http://127.0.0.1:${gw.gateway.apiPort}${path}`, {
    method,
    headers: { authorization: `Bearer ${gw.operatorToken}`, 'content-type': 'application/json' },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  return (await res.json()) as Record<string, unknown>;
}

/** A bare MQTT client under the device's id that says `hello` and records what comes back. */
async function twin(ctx: Ctx, hello: Hello, suffix: string): Promise<GatewayMessage[]> {
  const gw = ctx.gw!;
  const id = ctx.honest!.id;
  const received: GatewayMessage[] = [];
  const client = await mqtt.connectAsync(gw.url, {
    ca: gw.ca,
    protocolVersion: 4,
    clientId: `${id}.${suffix}`,
    username: id,
    reconnectPeriod: 0,
    minVersion: 'TLSv1.3',
  } as mqtt.IClientOptions);
  ctx.twins.push(client);
  client.on('message', (_t, payload) => received.push(decodeGatewayMessage(payload)));
  await client.subscribeAsync(topics.in(id));
  await client.publishAsync(topics.out(id), Buffer.from(encodeMessage(hello)));
  await eventually(() => received.some((m) => m.t === 'challenge'), 'the twin gets its onboarding round');
  return received;
}

it('an operator round goes to the attested connection, not to a newer twin past hello', async (ctx) => {
  const gw = ctx.gw!;
  const honest = ctx.honest!;
  const seen = await twin(ctx, honest.attester.hello(), 'twin1');
  assert.is(gw.gateway.connections.of(honest.id).length, 2, 'both connections are live');

  // The operator asks, through the API, for a round of this device.
  const asked = await operatorApi(gw, 'POST', '/v1/batches', { ids: [honest.id] });
  let progress = asked;
  for (let i = 0; i < 100 && progress.done !== true; i++) {
    await new Promise((r) => setTimeout(r, 50));
    progress = await operatorApi(gw, 'GET', `/v1/batches/${asked.id}`);
  }
  assert.is(progress.done, true, 'the batch completes');
  assert.is(
    (progress.appraised as Record<string, number>).affirming,
    1,
    'appraised on the honest connection',
  );
  assert.is(progress.stale, 0, 'not sent to the twin, where it would go stale');
  assert.equal(
    seen.filter((m) => m.t === 'challenge').map((m) => (m.t === 'challenge' ? m.reason : '')),
    ['onboard'],
    'the twin saw its own onboarding round only',
  );
  assert.is(gw.gateway.fleet.get(honest.id)?.posture, 'affirming');
});

it("a twin's hello with its own AK and agent changes nothing recorded of the device", async (ctx) => {
  const gw = ctx.gw!;
  const honest = ctx.honest!;
  const before = gw.gateway.fleet.get(honest.id)!;
  const own = simKeys(new TextEncoder().encode('twin/own-ak'));
  const forged: Hello = { ...honest.attester.hello(), ak: own.akPublicArea, agent: 'evil/6.6.6', swPcr: 9 };
  const seen = await twin(ctx, forged, 'twin2');
  const challenge = seen.find((m) => m.t === 'challenge');
  assert.ok(challenge?.t === 'challenge' && challenge.activate, 'a new AK is asked to activate');
  // It cannot activate (the credential is sealed to the honest TPM's EK): the round goes stale.
  await eventually(
    () => seen.some((m) => m.t === 'error' && m.code === 'stale'),
    'the twin round ends stale',
  );
  const after = gw.gateway.fleet.get(honest.id)!;
  assert.is(after.agent, before.agent, 'agent unchanged');
  assert.is(after.swPcr, before.swPcr, 'swPcr unchanged');
  assert.equal(after.ak, before.ak, 'the enrolled AK unchanged');
  assert.is(after.posture, 'affirming', 'posture unchanged');
  const stored = (await gw.gateway.store.device(honest.id))!;
  assert.is(stored.agent, before.agent, 'and so in the store');
  assert.is(stored.swPcr, before.swPcr);
});

it.run();
