import { type ChildProcess, spawn } from 'node:child_process';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { PostureNotice } from '../../gateway/posture/fleet.ts';
import type { SimDevice } from '../equipment/sim/sim-device.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import { eventually } from '../support/operator.ts';
import { connectAffirmedSimDevices, simPolicy } from '../support/sim-devices.ts';

// Posture events for back ends, read with a third-party client (mosquitto_sub, TLS 1.3): retained
// JSON on vigil/v1/fleet/{id}, one per device, a new one on every change; operators only.

interface Ctx {
  gw?: TestGateway;
  devices: SimDevice[];
  subs: ChildProcess[];
}
const it = suite<Ctx>('posture events on vigil/v1/fleet/#', { devices: [], subs: [] });

interface Sub {
  readonly lines: string[];
  readonly exited: Promise<{ code: number | null; stderr: string }>;
}

function mosquittoSub(ctx: Ctx, auth: string[], count: number): Sub {
  const gw = ctx.gw!;
  const child = spawn('mosquitto_sub', [
    ...['-h', 'localhost', '-p', String(gw.port), '--cafile', gw.caPath, '--tls-version', 'tlsv1.3'],
    ...auth,
    ...['-t', 'vigil/v1/fleet/#', '-C', String(count), '-W', '10'],
  ]);
  ctx.subs.push(child);
  const lines: string[] = [];
  let out = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    const parts = out.split('\n');
    out = parts.pop()!;
    lines.push(...parts);
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<{ code: number | null; stderr: string }>((resolve) =>
    child.once('exit', (code) => resolve({ code, stderr })),
  );
  return { lines, exited };
}

it.before(async (ctx) => {
  ctx.gw = await startTestGateway({ policy: simPolicy({ periodicMs: 60_000, deadlineMs: 800 }) });
  await connectAffirmedSimDevices(ctx.gw, ctx.devices, 'events-test', 2);
});

it.after(async (ctx) => {
  for (const s of ctx.subs) if (s.exitCode === null) s.kill();
  await Promise.all(ctx.devices.map((d) => d.close()));
  await ctx.gw?.stop();
});

it('an operator receives the retained posture of every device, then each change', async (ctx) => {
  const gw = ctx.gw!;
  const [a, b] = ctx.devices as [SimDevice, SimDevice];
  const sub = mosquittoSub(ctx, ['-u', 'operator', '-P', gw.operatorToken], 3);
  await eventually(() => sub.lines.length >= 2, 'two retained posture events', 8000);
  const retained = sub.lines.slice(0, 2).map((l) => JSON.parse(l) as PostureNotice);
  assert.equal(retained.map((n) => n.id).sort(), [a.id, b.id].sort());
  for (const n of retained) {
    assert.is(n.posture, 'affirming');
    assert.equal(n.reasons, []);
    assert.ok(n.expires! > n.at);
    assert.equal(n.labels, {});
  }

  // A change while subscribed: the device stops answering and turns stale at the deadline.
  b.silent = true;
  gw.gateway.attestation.start(gw.gateway.connections.of(b.id)[0]!, 'on-demand');
  const { code } = await sub.exited;
  assert.is(code, 0);
  const change = JSON.parse(sub.lines[2]!) as PostureNotice;
  assert.is(change.id, b.id);
  assert.is(change.posture, 'stale');
  assert.equal(change.reasons, ['stale']);
  assert.is(change.round, (await gw.gateway.store.recentRounds(b.id, 1))[0]?.id ?? null);
});

it('device credentials connect but the subscription is refused; nothing is received', async (ctx) => {
  const a = ctx.devices[0]!;
  const [attested] = ctx.gw!.gateway.connections.of(a.id);
  const sub = mosquittoSub(ctx, ['-u', a.id, '-i', `${a.id}.spy`, '-P', 'anything'], 1);
  const { stderr } = await sub.exited;
  assert.match(stderr, /All subscription requests were denied/);
  assert.equal(sub.lines, []);
  // mosquitto_sub has exited; the gateway hears of its closed socket a moment later.
  await eventually(() => ctx.gw!.gateway.connections.of(a.id).length === 1, 'the spy connection is gone');
  const [after] = ctx.gw!.gateway.connections.of(a.id);
  assert.ok(attested !== undefined && after === attested, 'the attested connection is the one left');
  assert.ok(!attested.closed && attested.trustedUntil > Date.now(), 'and it is undisturbed');
});

it('no credentials, or a wrong operator token: the connection is refused', async (ctx) => {
  for (const auth of [[], ['-u', 'operator', '-P', 'not-the-token']]) {
    const sub = mosquittoSub(ctx, auth, 1);
    const { code, stderr } = await sub.exited;
    assert.is.not(code, 0);
    assert.match(stderr, /Connection Refused: bad user name or password/);
    assert.equal(sub.lines, []);
  }
});

it.run();
