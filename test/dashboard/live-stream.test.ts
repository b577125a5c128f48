import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ApiError } from '../../gateway/api/errors.ts';
import { LiveStream, type LiveStreamOptions } from '../../gateway/dashboard/live-stream.ts';
import { EventBus, type GatewayEvent } from '../../gateway/events.ts';
import { type Frame, openStream, type Stream } from './support/http.ts';

// The SSE hub on a real HTTP server on loopback, fed by an EventBus: what a fresh client, a
// reconnecting client and a client that was away too long get, heartbeats, and its bounds.

interface Ctx {
  server?: Server;
  stream?: LiveStream;
  base: string;
  open: Stream[];
}
const it = suite<Ctx>('live stream (server-sent events)', { base: '', open: [] });

async function serve(
  ctx: Ctx,
  feed: EventBus | undefined,
  opts: LiveStreamOptions,
  beforeAttach: () => void = () => {},
): Promise<void> {
  const stream = new LiveStream(feed, opts);
  const server = createServer((req, res) => {
    try {
      beforeAttach();
      stream.attach(req, res);
    } catch (e) {
      res.writeHead(e instanceof ApiError ? e.status : 500).end(String(e));
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  ctx.server = server;
  ctx.stream = stream;
  ctx.base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
}

async function open(ctx: Ctx, lastEventId?: string): Promise<Stream> {
  const s = await openStream(ctx.base, lastEventId === undefined ? {} : { 'last-event-id': lastEventId });
  ctx.open.push(s);
  return s;
}

const posture = (id: string): GatewayEvent => ({
  kind: 'posture',
  notice: { id, posture: 'stale', reasons: ['stale'], expires: null, at: 1, round: null, labels: {} },
});
const ids = (frames: Frame[]) =>
  frames
    .filter((f) => f.event === 'message')
    .map((f) => (JSON.parse(f.data) as { notice: { id: string } }).notice.id);
const hello = (f: Frame) => JSON.parse(f.data) as { resumed: boolean; live: boolean };

it.after.each(async (ctx) => {
  for (const s of ctx.open) s.close();
  ctx.open = [];
  ctx.stream?.close();
  ctx.server?.closeAllConnections();
  await new Promise((r) => ctx.server?.close(r));
});

it('a fresh client gets a hello that asks for a snapshot, then every event live', async (ctx) => {
  const bus = new EventBus();
  await serve(ctx, bus, { epoch: 'aa' });
  bus.publish(posture('before'));
  const s = await open(ctx);
  assert.is(s.status, 200);
  const h = await s.waitFor((f) => f.event === 'hello', 'hello');
  assert.equal(hello(h), { resumed: false, live: true });
  assert.is(h.id, 'aa-1', 'the hello carries the newest id: a reconnect resumes from there');
  bus.publish(posture('x'));
  bus.publish(posture('y'));
  await s.waitFor((f) => f.id === 'aa-3', 'event 3');
  assert.equal(ids(s.frames), ['x', 'y'], 'nothing from before the connection');
});

it('a reconnecting client gets exactly what it missed, then a hello that says so', async (ctx) => {
  const bus = new EventBus();
  await serve(ctx, bus, { epoch: 'bb', capacity: 8 });
  for (const id of ['a', 'b', 'c', 'd']) bus.publish(posture(id));
  const s = await open(ctx, 'bb-2');
  const h = await s.waitFor((f) => f.event === 'hello', 'hello');
  assert.equal(hello(h), { resumed: true, live: true });
  assert.equal(ids(s.frames), ['c', 'd']);
  assert.equal(
    s.frames.filter((f) => f.event === 'message').map((f) => f.id),
    ['bb-3', 'bb-4'],
  );
});

it('a client away too long, or from another gateway process, is told to reload', async (ctx) => {
  const bus = new EventBus();
  await serve(ctx, bus, { epoch: 'cc', capacity: 3 });
  for (const id of ['a', 'b', 'c', 'd', 'e']) bus.publish(posture(id));
  const old = await open(ctx, 'cc-1');
  assert.equal(hello(await old.waitFor((f) => f.event === 'hello', 'hello')), { resumed: false, live: true });
  assert.equal(ids(old.frames), []);
  const other = await open(ctx, 'dd-4');
  assert.equal(hello(await other.waitFor((f) => f.event === 'hello', 'hello')).resumed, false);
  const garbage = await open(ctx, '<script>');
  assert.equal(hello(await garbage.waitFor((f) => f.event === 'hello', 'hello')).resumed, false);
});

it('an event published but not yet written when a client attaches reaches it once', async (ctx) => {
  const bus = new EventBus();
  let publishFirst = false;
  // In the same turn of the event loop as the attach: the event is numbered, not yet written.
  await serve(ctx, bus, { epoch: 'ee' }, () => {
    if (publishFirst) bus.publish(posture('p'));
  });
  const first = await open(ctx);
  await first.waitFor((f) => f.event === 'hello', 'hello');
  publishFirst = true;
  const second = await open(ctx, 'ee-0');
  await second.waitFor((f) => f.event === 'hello', 'hello');
  bus.publish(posture('q'));
  await second.waitFor((f) => f.id === 'ee-2', 'event 2');
  await first.waitFor((f) => f.id === 'ee-2', 'event 2');
  assert.equal(ids(second.frames), ['p', 'q']);
  assert.equal(ids(first.frames), ['p', 'q']);
});

it('a heartbeat comment keeps an idle stream alive', async (ctx) => {
  await serve(ctx, new EventBus(), { heartbeatMs: 50 });
  const s = await open(ctx);
  const beat = await s.waitFor((f) => f.comment === 'keepalive', 'heartbeat');
  assert.is(beat.event, 'comment');
});

it('without an event feed the hello says so: the page polls', async (ctx) => {
  await serve(ctx, undefined, {});
  const s = await open(ctx);
  assert.equal(hello(await s.waitFor((f) => f.event === 'hello', 'hello')), { resumed: false, live: false });
});

it('streams beyond maxClients are refused; a closed one frees its place', async (ctx) => {
  await serve(ctx, new EventBus(), { maxClients: 1 });
  const a = await open(ctx);
  await a.waitFor((f) => f.event === 'hello', 'hello');
  const b = await open(ctx);
  assert.is(b.status, 503);
  a.close();
  const until = Date.now() + 5000;
  while (ctx.stream!.clientCount > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  const c = await open(ctx);
  assert.is(c.status, 200);
});

it.run();
