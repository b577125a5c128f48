import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import mqtt, { type MqttClient } from 'mqtt';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  decodeGatewayMessage,
  deviceIdentity,
  type GatewayMessage,
  topics,
} from '../../shared/protocol/index.ts';
import { toHex } from '../../shared/tpm/index.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import { eventually, settle } from '../support/operator.ts';
import type { Connected, ToolsDevice } from '../support/tools-device.ts';
import { appEcho, errorsIn, honestServed, refusals } from './abuse-support.ts';
import { memoryNow, reportMemory } from './memory.ts';
import { expectMessage } from './support.ts';
import { answerAffirmed, attestedConnection, createDevice, SOFTWARE } from './testbed.ts';

// Connections that prove nothing: the hello deadline, the keepalive bound, the per-address limit
// on connections that have not attested, and the per-device limit that never closes the attested
// connection. Attackers are mqtt.js clients, raw TLS and TCP sockets, and mosquitto_sub; an honest
// device on its own swtpm is served throughout.

const policy = (connections: object) => ({
  admission: { mode: 'open' },
  referenceValues: { software: [{ ...SOFTWARE, digest: toHex(SOFTWARE.digest) }] },
  rounds: { periodicMs: 600_000, deadlineMs: 5000 },
  connections,
});

interface Ctx {
  gw: TestGateway;
  honest: ToolsDevice;
  h: Connected;
  clients: MqttClient[];
  sockets: net.Socket[];
}

async function setUp(ctx: Ctx, connections: object): Promise<void> {
  ctx.clients = [];
  ctx.sockets = [];
  ctx.gw = await startTestGateway({ policy: policy(connections) });
  ctx.honest = await createDevice();
  ctx.h = await attestedConnection(ctx.gw, ctx.honest, { suffix: 'honest' });
}

async function tearDown(ctx: Ctx): Promise<void> {
  for (const c of ctx.clients ?? []) c.end(true);
  for (const s of ctx.sockets ?? []) s.destroy();
  await ctx.h?.close().catch(() => undefined);
  await ctx.honest?.stop();
  await ctx.gw?.stop();
}

const randomId = () => deviceIdentity(new Uint8Array(randomBytes(64))).deviceId;

/** An mqtt.js client under device id `id` that never says hello; records what it hears on `in`. */
async function silentClient(
  ctx: Ctx,
  id: string,
  opts: { suffix?: string; keepalive?: number } = {},
): Promise<{ client: MqttClient; heard: GatewayMessage[]; closed: Promise<void> }> {
  const client = mqtt.connect(ctx.gw.url, {
    ca: ctx.gw.ca,
    protocolVersion: 4,
    clientId: `${id}.${opts.suffix ?? randomBytes(4).toString('hex')}`,
    username: id,
    reconnectPeriod: 0,
    keepalive: opts.keepalive ?? 60,
  });
  ctx.clients.push(client);
  const heard: GatewayMessage[] = [];
  client.on('message', (t, p) => {
    if (t === topics.in(id)) heard.push(decodeGatewayMessage(p));
  });
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  await client.subscribeAsync(topics.in(id));
  return { client, heard, closed };
}

/** The CONNACK return code a CONNECT with this keepalive gets (0: accepted). */
async function connackFor(ctx: Ctx, keepalive: number): Promise<number> {
  const id = randomId();
  const c = mqtt.connect(ctx.gw.url, {
    ca: ctx.gw.ca,
    protocolVersion: 4,
    clientId: id,
    username: id,
    reconnectPeriod: 0,
    keepalive,
  });
  const code = await new Promise<number>((resolve) => {
    c.once('connect', () => resolve(0));
    c.on('error', (e) => resolve((e as { code?: number }).code ?? -1));
  });
  c.end(true);
  return code;
}

/** A TLS (or, with `tlsToo` false, bare TCP) connection that sends nothing; resolves once it is open. */
function idleSocket(ctx: Ctx, localAddress: string, tlsToo: boolean): Promise<net.Socket> {
  const socket = tlsToo
    ? tls.connect({
        host: '127.0.0.1',
        port: ctx.gw.port,
        ca: ctx.gw.ca,
        servername: 'localhost',
        localAddress,
      } as tls.ConnectionOptions)
    : net.connect({ host: '127.0.0.1', port: ctx.gw.port, localAddress });
  ctx.sockets.push(socket);
  socket.on('error', () => undefined);
  return new Promise((resolve) => {
    socket.once(tlsToo ? 'secureConnect' : 'connect', () => resolve(socket));
    socket.once('close', () => resolve(socket));
  });
}

const open = (s: net.Socket) => !s.destroyed && s.readyState === 'open';

// ---------------------------------------------------------------------------------------------

const deadline = suite<Ctx>('hello deadline and keepalive bound');
const HELLO_MS = 3000;

deadline.before((ctx) => setUp(ctx, { helloTimeoutMs: HELLO_MS, keepaliveMaxS: 120 }));
deadline.after(tearDown);

deadline(
  '200 connections as device ids that never say hello: each told identity-mismatch and closed at the deadline',
  async (ctx) => {
    const { gw } = ctx;
    const before = await memoryNow();
    const silent: Awaited<ReturnType<typeof silentClient>>[] = await Promise.all(
      Array.from({ length: 200 }, () => silentClient(ctx, randomId())),
    );
    const noConnect = await Promise.all(Array.from({ length: 20 }, () => idleSocket(ctx, '127.0.0.1', true)));
    const noTls = await Promise.all(Array.from({ length: 20 }, () => idleSocket(ctx, '127.0.0.1', false)));
    await Promise.race([
      Promise.all(silent.map((s) => s.closed)),
      settle(HELLO_MS + 5000).then(() => assert.unreachable('the silent connections are still held')),
    ]);
    await eventually(() => [...noConnect, ...noTls].every((s) => !open(s)), 'idle sockets closed', 3000);
    for (const s of silent) {
      const errors = errorsIn(s.heard);
      assert.equal(errors.length, 1, errors.join('\n'));
      assert.match(errors[0]!, /^identity-mismatch: no hello within 3000 ms of connecting/);
    }
    assert.is(gw.gateway.connections.size, 1, 'the honest connection remains');
    assert.ok((await refusals(gw))['hello-timeout']! >= 240);
    // The test's own clients are closed; let them go so that what is measured is the gateway's.
    silent.length = 0;
    ctx.clients.length = 0;
    ctx.sockets.length = 0;
    await reportMemory('240 connections that never said hello, after the deadline', before, 8);
    await honestServed(gw, ctx.honest, ctx.h, 'after the hello deadline');
  },
);

deadline(
  'keepalive 0 and over connections.keepaliveMaxS refused at CONNECT (return code 5), by mqtt.js and mosquitto_sub',
  async (ctx) => {
    const { gw } = ctx;
    assert.is(await connackFor(ctx, 0), 5, 'keepalive 0');
    assert.is(await connackFor(ctx, 121), 5, 'keepalive over the maximum');
    assert.is(await connackFor(ctx, 120), 0, 'keepalive at the maximum');
    const child = spawn('mosquitto_sub', [
      ...['-h', 'localhost', '-p', String(gw.port), '--cafile', gw.caPath, '--tls-version', 'tlsv1.3'],
      ...['-u', 'operator', '-P', gw.operatorToken, '-t', 'app/#', '-k', '65535', '-W', '5'],
    ]);
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    assert.ok(code !== 0, 'mosquitto_sub is refused');
    assert.match(stderr, /not authori[sz]ed/i);
    assert.is((await refusals(gw)).keepalive, 3);
    await honestServed(gw, ctx.honest, ctx.h, 'after the keepalive refusals');
  },
);

deadline.run();

// ---------------------------------------------------------------------------------------------

const limits = suite<Ctx & { attacker: ToolsDevice }>('per-address and per-device connection limits');
const PER_ADDRESS = 60;
const PER_DEVICE = 3;

limits.before(async (ctx) => {
  await setUp(ctx, { helloTimeoutMs: 4000, perDevice: PER_DEVICE, unattestedPerAddress: PER_ADDRESS });
  ctx.attacker = await createDevice();
});
limits.after(async (ctx) => {
  await ctx.attacker?.stop();
  await tearDown(ctx);
});

limits(
  'one address holds at most unattestedPerAddress connections that have not attested; attested ones do not count',
  async (ctx) => {
    const { gw, attacker } = ctx;
    // The attacker's own device attests from 127.0.0.2 first: that connection does not count.
    const a = await attacker.connect(gw.url, gw.ca, { localAddress: '127.0.0.2' });
    await attacker.send(a, attacker.hello());
    await answerAffirmed(attacker, a, expectMessage(await a.next(), 'challenge'));
    const before = await memoryNow();
    const flood = await Promise.all(Array.from({ length: 100 }, () => idleSocket(ctx, '127.0.0.2', true)));
    await settle(300);
    assert.is(flood.filter(open).length, PER_ADDRESS, 'the rest were cut before their TLS handshake');
    assert.is((await refusals(gw))['address-connections'], 100 - PER_ADDRESS);
    // Another address is not affected, nor is the attested connection of the flooding one.
    await honestServed(gw, ctx.honest, ctx.h, 'during the flood from 127.0.0.2');
    await appEcho(attacker, a);
    await eventually(() => flood.every((s) => !open(s)), 'the flood is closed at the hello deadline', 8000);
    await reportMemory('100 idle TLS connections from one address, after the deadline', before, 8);
    await a.close();
  },
);

limits(
  'a device id holds at most perDevice connections: the oldest unattested one gives way, never the attested one',
  async (ctx) => {
    const { gw, honest } = ctx;
    const attested = gw.gateway.connections.attestedOf(honest.id);
    assert.ok(attested, 'the honest device is attested');
    const twins = [];
    for (let i = 0; i < 8; i++) twins.push(await silentClient(ctx, honest.id, { suffix: `twin${i}` }));
    await settle(200);
    const live = gw.gateway.connections.of(honest.id);
    assert.is(live.length, PER_DEVICE, `${live.length} live connections for the device`);
    assert.ok(live.includes(attested), 'the attested connection is never the one closed');
    // Each twin but the last two was closed to make room, and was told why.
    for (const t of twins.slice(0, 6)) {
      await t.closed;
      assert.match(
        errorsIn(t.heard).join('\n'),
        /^quota-exceeded: device \w+ is at its 3 connections \(connections.perDevice\)/,
      );
    }
    assert.is((await refusals(gw))['device-connections'], 6);
    await honestServed(gw, honest, ctx.h, 'with its id at its connection limit');
    // The honest device reconnecting gets in too, and once it attests its older connection goes.
    const b = await attestedConnection(gw, honest, { suffix: 'honest-again' });
    await eventually(
      () => !gw.gateway.connections.of(honest.id).includes(attested),
      'the older attested connection retired',
    );
    await honestServed(gw, honest, b, 'on its new connection');
    ctx.h = b;
  },
);

limits.run();
