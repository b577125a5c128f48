import { randomBytes } from 'node:crypto';
import tls from 'node:tls';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { deviceIdentity, topics } from '../../shared/protocol/index.ts';
import type { TestGateway } from '../support/gateway.ts';
import { eventually } from '../support/operator.ts';
import type { Connected, ToolsDevice } from '../support/tools-device.ts';
import { expectError, expectMessage } from './support.ts';
import { attestedConnection, createDevice, startOpenGateway } from './testbed.ts';

// Oversized payloads. The protocol's limit (maxPayload, default 1 MiB) is checked on a complete
// PUBLISH, but MQTT lets a packet announce up to 256 MiB, and an MQTT parser buffers the packet
// until it is complete. The broker therefore cuts a connection whose packet announces more than
// any policy could accept, as soon as its fixed header arrives (gateway/broker.ts, packet guard).

interface Ctx {
  gw: TestGateway;
  device: ToolsDevice;
  a: Connected;
}
const it = suite<Ctx>('oversized payloads');

it.before(async (ctx) => {
  ctx.gw = await startOpenGateway({ deadlineMs: 5000 });
  ctx.device = await createDevice();
  ctx.a = await ctx.device.connect(ctx.gw.url, ctx.gw.ca, { suffix: 'a' });
});

it.after(async (ctx) => {
  await ctx.a?.close().catch(() => undefined);
  await ctx.device?.stop();
  await ctx.gw?.stop();
});

/** MQTT remaining-length varint. */
function varint(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}

function mqttString(s: string): Buffer {
  const b = Buffer.from(s);
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
}

/** A hand-made MQTT 3.1.1 CONNECT for a device id. */
function connectPacket(id: string): Buffer {
  const body = Buffer.concat([
    mqttString('MQTT'),
    Buffer.from([4, 0x82, 0, 60]), // level 4, flags: username + clean session, keepalive 60
    mqttString(`${id}.raw`),
    mqttString(id),
  ]);
  return Buffer.concat([Buffer.from([0x10]), varint(body.length), body]);
}

it('a 2 MiB publish on out: error malformed, the connection and the gateway serve on', async (ctx) => {
  const { device, a } = ctx;
  await a.client.publishAsync(topics.out(device.id), Buffer.alloc(2 * 1024 * 1024, 0xa0));
  assert.match(await expectError(a, 'malformed', 10_000), /exceeds the maximum/);
  await device.send(a, device.hello());
  expectMessage(await a.next(), 'challenge');
});

it('a PUBLISH announcing 64 MiB: the connection is cut at its header, memory does not follow', async (ctx) => {
  const { gw } = ctx;
  const id = deviceIdentity(new Uint8Array(randomBytes(64))).deviceId;
  const socket = tls.connect({ host: '127.0.0.1', port: gw.port, ca: gw.ca, servername: 'localhost' });
  socket.on('error', () => undefined);
  await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
  socket.write(connectPacket(id));
  await new Promise<void>((resolve) => socket.once('data', () => resolve())); // CONNACK
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const total = 64 * 1024 * 1024;
  const topic = mqttString(topics.out(id));
  socket.write(Buffer.concat([Buffer.from([0x30]), varint(topic.length + total), topic]));
  const base = process.memoryUsage().arrayBuffers;
  let peak = base;
  // Stream the body in 1 MiB chunks for as long as the gateway keeps the connection.
  const chunk = Buffer.alloc(1024 * 1024, 0x41);
  let sent = 0;
  let open = true;
  void closed.then(() => {
    open = false;
  });
  while (open && sent < total) {
    if (!socket.write(chunk)) await new Promise((r) => socket.once('drain', r).once('close', r));
    sent += chunk.length;
    peak = Math.max(peak, process.memoryUsage().arrayBuffers);
  }
  await eventually(() => !open, 'the gateway cuts the connection', 10_000);
  const grown = (peak - base) / 1024 / 1024;
  assert.ok(sent < total, `the gateway closed before the body was complete (${sent / 1024 / 1024} MiB sent)`);
  assert.ok(grown < 24, `memory grew ${grown.toFixed(1)} MiB, not with the announced 64 MiB`);
});

it('after both, another connection attests normally', async (ctx) => {
  const { gw, device } = ctx;
  const c = await attestedConnection(gw, device);
  await c.close();
});

it.run();
