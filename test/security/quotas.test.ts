import type { ChildProcess } from 'node:child_process';
import pino from 'pino';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { toHex } from '../../shared/tpm/index.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import { connectOperator, settle } from '../support/operator.ts';
import type { Connected, ToolsDevice } from '../support/tools-device.ts';
import { errorsIn, hear, honestServed, refusals, retainedSeenBy } from './abuse-support.ts';
import { memoryNow, reportMemory } from './memory.ts';
import { expectMessage } from './support.ts';
import { answerAffirmed, attestedConnection, createDevice, SOFTWARE } from './testbed.ts';

// What one attested device may make the broker hold, against the default policy (maxPayload 1 MiB;
// per device 16 retained messages in 16 KiB, 32 subscriptions, 64 queued messages in 32 KiB): the
// attacker is an admitted device with its own TPM (swtpm), attested like any other, using only
// its own topics. An honest device on its own swtpm is served throughout.

interface Ctx {
  gw: TestGateway;
  honest: ToolsDevice;
  h: Connected;
  attacker: ToolsDevice;
  open: Connected[];
  children: ChildProcess[];
  /** The gateway's log lines (JSON). */
  log: string[];
}
const it = suite<Ctx>('per-device quotas in the broker');

it.before(async (ctx) => {
  ctx.open = [];
  ctx.children = [];
  ctx.log = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => ctx.log.push(line) });
  ctx.gw = await startTestGateway({
    logger,
    policy: {
      admission: { mode: 'open' },
      referenceValues: { software: [{ ...SOFTWARE, digest: toHex(SOFTWARE.digest) }] },
      rounds: { periodicMs: 600_000, deadlineMs: 5000 },
    },
  });
  [ctx.honest, ctx.attacker] = await Promise.all([createDevice(), createDevice()]);
  ctx.h = await attestedConnection(ctx.gw, ctx.honest, { suffix: 'honest' });
});

it.after(async (ctx) => {
  for (const c of ctx.children ?? []) if (c.exitCode === null) c.kill();
  for (const c of [ctx.h, ...(ctx.open ?? [])]) await c?.close().catch(() => undefined);
  await ctx.honest?.stop();
  await ctx.attacker?.stop();
  await ctx.gw?.stop();
});

/** A fresh attested connection of the attacker (its own refusal budget), closed at the end. */
async function attackerConnection(ctx: Ctx, opts: { suffix?: string; clean?: boolean } = {}) {
  const c = await ctx.attacker.connect(ctx.gw.url, ctx.gw.ca, opts);
  ctx.open.push(c);
  await ctx.attacker.send(c, ctx.attacker.hello());
  await answerAffirmed(ctx.attacker, c, expectMessage(await c.next(), 'challenge'));
  return c;
}

it('16 retained app messages of 2 MiB (over maxPayload): each refused, told malformed, none pinned', async (ctx) => {
  const { gw, attacker } = ctx;
  const a = await attackerConnection(ctx);
  const heard = hear(a);
  const before = await memoryNow();
  const big = Buffer.alloc(2 * 1024 * 1024, 0x61);
  for (let i = 0; i < 16; i++)
    await a.client.publishAsync(`app/${attacker.id}/pin${i}`, big, { qos: 1, retain: true });
  await settle(300);
  const errors = errorsIn(heard.messages);
  heard.stop();
  // What the broker keeps once the connection (and its read buffers) is gone.
  await a.close();
  await reportMemory('16 retained publishes of 2 MiB, connection closed', before, 16);
  // The device is told within its refusal budget (5 a minute), then only counted.
  assert.is(errors.length, 5, errors.join('\n'));
  for (const e of errors)
    assert.match(e, /^malformed: the payload of 2097152 bytes .* exceeds the maximum of 1048576/);
  assert.is((await refusals(gw))['payload-too-large'], 16);
  const seen = await retainedSeenBy(gw, `app/${attacker.id}/#`, 2, ctx.children);
  assert.equal(seen, [], 'a late subscriber gets nothing of them');
  await honestServed(gw, ctx.honest, ctx.h, 'after the 2 MiB retained publishes');
});

it('retained messages over quotas.retainedMessages and retainedBytes: refused, told quota-exceeded', async (ctx) => {
  const { gw, attacker } = ctx;
  const b = await attackerConnection(ctx);
  const heard = hear(b);
  const small = Buffer.alloc(100, 0x62);
  for (let i = 0; i < 20; i++)
    await b.client.publishAsync(`app/${attacker.id}/n${i}`, small, { qos: 1, retain: true });
  // An empty retained payload clears one; a 16 KiB one would take the device over 16 KiB.
  await b.client.publishAsync(`app/${attacker.id}/n0`, Buffer.alloc(0), { qos: 1, retain: true });
  await b.client.publishAsync(`app/${attacker.id}/big`, Buffer.alloc(16 * 1024, 0x63), {
    qos: 1,
    retain: true,
  });
  await settle(300);
  heard.stop();
  const errors = errorsIn(heard.messages);
  assert.is(errors.length, 5, errors.join('\n'));
  for (const e of errors.slice(0, 4))
    assert.match(
      e,
      /^quota-exceeded: .* 16 retained messages, the most quotas.retainedMessages allows \(16\)/,
    );
  assert.match(
    errors[4]!,
    /^quota-exceeded: a retained 16384-byte payload .* over quotas.retainedBytes \(16384\)/,
  );
  const r = await refusals(gw);
  assert.is(r['retained-messages'], 4);
  assert.is(r['retained-bytes'], 1);
  const seen = await retainedSeenBy(gw, `app/${attacker.id}/#`, 2, ctx.children);
  assert.is(seen.length, 15, 'the 16 within quota, less the one cleared');
  for (const line of seen) assert.match(line, / 100$/);
  await b.close();
  await honestServed(gw, ctx.honest, ctx.h, 'after the retained quota');
});

it('subscriptions over quotas.subscriptions: SUBACK 0x80 and quota-exceeded; unsubscribing makes room', async (ctx) => {
  const { gw, attacker } = ctx;
  const c = await attackerConnection(ctx);
  const heard = hear(c);
  const granted: number[] = [];
  for (let i = 0; i < 40; i++) granted.push(await c.subscribe(`app/${attacker.id}/s${i}`));
  assert.equal(granted, [...new Array(32).fill(0), ...new Array(8).fill(128)]);
  await settle(200);
  const errors = errorsIn(heard.messages);
  assert.is(errors.length, 5);
  assert.match(
    errors[0]!,
    /^quota-exceeded: device \w+ holds 32 subscriptions, the most quotas.subscriptions allows \(32\)/,
  );
  assert.is((await refusals(gw)).subscriptions, 8);
  // An unsubscribe makes room for one more.
  await c.client.unsubscribeAsync(`app/${attacker.id}/s0`);
  assert.is(await c.subscribe(`app/${attacker.id}/other`), 0);
  assert.is(await c.subscribe(`app/${attacker.id}/s40`), 128);
  heard.stop();
  await c.close();
  await honestServed(gw, ctx.honest, ctx.h, 'after the subscription quota');
});

it('a persistent session left offline: its queue held within quotas.queued*, refused filters never stored', async (ctx) => {
  const { gw, attacker, honest } = ctx;
  // The attacker's persistent session subscribes QoS 1 to its own topic and to `#` (refused in
  // the same SUBSCRIBE), then goes away.
  const p = await attackerConnection(ctx, { suffix: 'persistent', clean: false });
  const granted = await new Promise<number[]>((resolve, reject) =>
    p.client.subscribe({ [`app/${attacker.id}/q`]: { qos: 1 }, '#': { qos: 1 } }, (err, _subs, suback) =>
      suback ? resolve(suback.granted as number[]) : reject(err),
    ),
  );
  assert.equal(granted, [1, 128]);
  await p.close();
  const op = await connectOperator(gw.url, gw.ca, gw.operatorToken);
  const e = await attackerConnection(ctx);
  const before = await memoryNow();
  const payload = Buffer.alloc(4096, 0x71);
  // 8 MiB for the offline session from the device itself, and 8 MiB elsewhere that only `#` matches.
  for (let i = 0; i < 2048; i += 64) {
    await Promise.all(
      Array.from({ length: 64 }, (_, k) => [
        e.client.publishAsync(`app/${attacker.id}/q`, payload, { qos: 1 }),
        op.client.publishAsync(`app/${honest.id}/flood/${i + k}`, payload, { qos: 1 }),
      ]).flat(),
    );
  }
  await op.close();
  await e.close();
  await reportMemory(
    '16 MiB of QoS 1 messages for an offline persistent session, publishers closed',
    before,
    8,
  );
  const r = await refusals(gw);
  assert.ok((r['queued-bytes'] ?? 0) + (r['queued-messages'] ?? 0) >= 2048 - 8, JSON.stringify(r));

  // The session is still there; a second persistent session of the device replaces it offline.
  const back = await ctx.attacker.connect(gw.url, gw.ca, { suffix: 'persistent', clean: false });
  ctx.open.push(back);
  assert.is(back.sessionPresent, true, 'the persistent session was kept');
  await back.close();
  const other = await attackerConnection(ctx, { suffix: 'persistent2', clean: false });
  assert.is(await other.subscribe(`app/${attacker.id}/q2`), 0);
  await other.close();
  await settle(200);
  const again = await ctx.attacker.connect(gw.url, gw.ca, { suffix: 'persistent', clean: false });
  ctx.open.push(again);
  assert.is(again.sessionPresent, false, 'one stored offline session per device: the older one is gone');
  await again.close();
  await honestServed(gw, ctx.honest, ctx.h, 'after the offline queue');
});

it('refused publishes and subscribes are logged within a budget, not once per attempt', async (ctx) => {
  const { gw, honest } = ctx;
  const f = await attackerConnection(ctx);
  const id = f.client.options.clientId!;
  const from = ctx.log.length;
  for (let i = 0; i < 300; i++) f.client.publish(`app/${honest.id}/not-mine`, 'x', { qos: 0 });
  for (let i = 0; i < 100; i++) await f.subscribe(`vigil/v1/${honest.id}/in`);
  await settle(300);
  const lines = ctx.log.slice(from).filter((l) => l.includes(id) && /refused/.test(l));
  assert.ok(lines.length <= 5, `${lines.length} log lines for 400 refusals`);
  const r = await refusals(gw);
  assert.ok((r['publish-denied'] ?? 0) >= 300 && (r['subscribe-denied'] ?? 0) >= 100, JSON.stringify(r));
  await f.close();
  await honestServed(gw, ctx.honest, ctx.h, 'after the refusal flood');
});

it.run();
