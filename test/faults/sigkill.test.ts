import { readFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type SimFleet, startSimFleet } from '../equipment/sim/fleet.ts';
import { sqliteSpecific } from '../support/gateway.ts';
import { type GatewayProcess, gatewayDir, startGatewayProcess } from '../support/gateway-process.ts';
import { eventually, settle } from '../support/operator.ts';
import { simPolicy } from '../support/sim-devices.ts';
import { removeDir, tempDir } from '../support/tmp.ts';

// The gateway killed with SIGKILL in the middle of rounds, devices connected: it runs as its own
// process (the CLI), so the kill is real and nothing gets to flush or close. On restart nothing
// committed is lost (enrolment, AKs, history, pending deadlines), the database passes SQLite's
// integrity_check, the deadlines of the rounds that were in flight still fire, and every device
// re-attests.

sqliteSpecific(
  'test/faults/sigkill.test.ts',
  "reads vigil.db and runs SQLite's integrity_check; a gateway killed on PostgreSQL: test/scale/balancer.test.ts",
);

const COUNT = 12;
const SILENT = 4;
const DEADLINE_MS = 3500;

interface Ctx {
  dir: string;
  port: number;
  gateway?: GatewayProcess;
  fleet?: SimFleet;
}
const it = suite<Ctx>('gateway killed with SIGKILL');

it.before(async (ctx) => {
  ctx.dir = tempDir('vigil-kill-');
  ({ port: ctx.port } = await gatewayDir(ctx.dir, simPolicy({ periodicMs: 4000, deadlineMs: DEADLINE_MS })));
});

it.after(async (ctx) => {
  await ctx.fleet?.close();
  await ctx.gateway?.kill();
  removeDir(ctx.dir);
});

interface Snapshot {
  devices: { id: string; ak: string; posture: string }[];
  rounds: number;
  events: number;
  pending: { id: string; deadline: number }[];
}

function snapshot(dir: string): Snapshot {
  const db = new Database(`${dir}/vigil.db`, { readonly: true, fileMustExist: true });
  try {
    const devices = db
      .prepare('SELECT id, hex(ak_name) AS ak, posture FROM devices ORDER BY id')
      .all() as Snapshot['devices'];
    const rounds = (db.prepare('SELECT count(*) AS n FROM rounds').get() as { n: number }).n;
    const events = (db.prepare('SELECT count(*) AS n FROM posture_events').get() as { n: number }).n;
    const pending = db
      .prepare("SELECT id, deadline_at AS deadline FROM rounds WHERE state = 'pending' ORDER BY id")
      .all() as Snapshot['pending'];
    return { devices, rounds, events, pending };
  } finally {
    db.close();
  }
}

function integrity(dir: string): string {
  const db = new Database(`${dir}/vigil.db`, { fileMustExist: true });
  try {
    return (db.pragma('integrity_check', { simple: true }) as string) ?? 'no answer';
  } finally {
    db.close();
  }
}

it('kill -9 mid-round: nothing committed lost, integrity ok, deadlines kept, every device re-attests', async (ctx) => {
  const ca = readFileSync(`${ctx.dir}/ca.pem`);
  ctx.gateway = await startGatewayProcess(ctx.dir, ctx.port);
  const fleet = startSimFleet({
    url: `mqtts://localhost:${ctx.port}`,
    ca,
    count: COUNT,
    concurrency: 8,
    connect: { reconnect: { baseMs: 100, capMs: 1000 } },
    readyTimeoutMs: 30_000,
  });
  ctx.fleet = fleet;
  await fleet.ready;
  assert.equal(fleet.refused, []);
  // Some devices stop answering: their next periodic rounds stay in flight until the kill.
  for (const d of fleet.devices.slice(0, SILENT)) d.silent = true;
  await eventually(
    () => snapshot(ctx.dir).pending.length >= SILENT,
    'rounds in flight for the silent devices',
    10_000,
  );
  await settle(100); // the store's write-behind delay is 20 ms: what happened so far is committed
  const before = snapshot(ctx.dir);
  assert.is(before.devices.length, COUNT);
  assert.ok(before.devices.every((d) => d.ak.length > 0 && d.posture === 'affirming'));

  await ctx.gateway!.kill();
  assert.is(ctx.gateway!.child.signalCode, 'SIGKILL');

  assert.is(integrity(ctx.dir), 'ok', 'the database passes integrity_check after the kill');
  const after = snapshot(ctx.dir);
  assert.equal(
    after.devices.map((d) => [d.id, d.ak]),
    before.devices.map((d) => [d.id, d.ak]),
    'every enrolment and AK survived',
  );
  assert.ok(after.rounds >= before.rounds && after.events >= before.events, 'history kept');
  for (const p of before.pending)
    assert.ok(
      after.pending.some((q) => q.id === p.id && q.deadline === p.deadline),
      `pending round ${p.id} and its deadline survived`,
    );

  // Restart; the silent devices answer again. Every device re-attests on a new connection.
  for (const d of fleet.devices) d.silent = false;
  const counts = fleet.devices.map((d) => d.resultCount);
  ctx.gateway = await startGatewayProcess(ctx.dir, ctx.port);
  await eventually(
    () => fleet.devices.every((d, i) => d.resultCount > counts[i]! && d.lastResult?.status === 'affirming'),
    'every device re-attests after the restart',
    30_000,
  );
  // The rounds that were in flight when the gateway died are settled at their old deadlines.
  const lastDeadline = Math.max(...before.pending.map((p) => p.deadline));
  await eventually(
    () => {
      const now = snapshot(ctx.dir);
      return before.pending.every((p) => !now.pending.some((q) => q.id === p.id));
    },
    'the re-armed deadlines settle the rounds of before the kill',
    Math.max(0, lastDeadline - Date.now()) + 5000,
  );
  assert.is(integrity(ctx.dir), 'ok');
});

it.run();
