import { createPublicKey } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Gateway } from '../../gateway/gateway.ts';
import { importBundle } from '../../gateway/releases/import.ts';
import type { RolloutView } from '../../gateway/rollouts/view.ts';
import type { Command } from '../../shared/protocol/index.ts';
import { membersDigest, verifyOperateToken } from '../../shared/protocol/operate-token.ts';
import { toHex } from '../../shared/tpm/bytes.ts';
import type { TreeFiles } from '../release/support.ts';
import {
  digestOf,
  type Member,
  packApp,
  REFERENCE,
  startMember,
  trustReleaseKey,
  V1,
  V2,
} from '../rollouts/support.ts';
import { eventually, settle } from '../support/operator.ts';
import { sql } from '../support/postgres.ts';
import { gatewayCliAt } from '../support/run.ts';
import { removeDir, tempDir } from '../support/tmp.ts';
import {
  api,
  type FleetEnv,
  type GatewayProcess,
  spawnGateway,
  startFleetEnv,
  startInProcess,
} from './support.ts';

// A rollout over a swarm whose members are held by different gateways (docs/rollouts.md §11):
// three real agents on swtpm, one on each of three gateways sharing PostgreSQL and Redis. A
// rollout started on one gateway converges every member from swarm rounds issued by the gateway
// holding it, the artifact reaching members on gateways that never imported it; an operation asked
// of another gateway reaches every member with a token that verifies; every gateway's API shows
// the same rollout. Then the owner is killed with SIGKILL mid-rollout (a fourth gateway, as a child
// process) and a survivor completes the rollout under the same command ids; then Redis stops while
// the rollout waits on a member of another gateway, and the rollout completes once it is back.

const V3: TreeFiles = { ...V2, 'bin/app': { data: '#!/bin/sh\necho v3\n', exec: true } };
const V4: TreeFiles = { ...V2, 'bin/app': { data: '#!/bin/sh\necho v4\n', exec: true } };
const SWARM = 'line=x';

interface Ctx {
  env: FleetEnv;
  /** gw1 to gw3, in this process; member i is held by gw(i+1). */
  gws: Gateway[];
  members: Member[];
  /** Commands each member received, by member id. */
  received: Map<string, Command[]>;
  key: ReturnType<typeof trustReleaseKey>;
  work: string;
  gw4?: GatewayProcess;
}
const it = suite<Ctx>('a rollout over members held by three gateways');

it.before(async (ctx) => {
  ctx.gws = [];
  ctx.members = [];
  ctx.received = new Map();
  ctx.work = tempDir('vigil-fleet-rollout-');
  ctx.env = await startFleetEnv({
    gateways: 4,
    policy: {
      admission: { mode: 'open' },
      rounds: { periodicMs: 60_000, deadlineMs: 3000 },
      referenceValues: REFERENCE(),
    },
  });
  ctx.key = trustReleaseKey(ctx.env.dirs[0]!.dir);
  for (const d of ctx.env.dirs.slice(0, 3)) ctx.gws.push(await startInProcess(d));
  for (const [i, d] of ctx.env.dirs.slice(0, 3).entries()) {
    const m = await startMember({
      url: `mqtts://localhost:${d.mqttPort}`,
      caPath: join(d.dir, 'ca.pem'),
      releaseKey: ctx.key.verify,
    });
    ctx.members.push(m);
    ctx.received.set(m.id, []);
    m.agent.agent.on('command', (c) => ctx.received.get(m.id)!.push(c));
    await eventually(() => ctx.gws[i]!.connections.attestedOf(m.id) !== undefined, `member on gw${i + 1}`);
  }
  // Records reach the other gateways through the store and the bus: gw2 labels members it knows.
  await eventually(
    () => ctx.members.every((m) => ctx.gws[1]!.fleet.get(m.id)),
    'gw2 knows every member',
    15_000,
  );
  for (const m of ctx.members)
    await api(ctx.env.dirs[1]!, ctx.env.token, 'PATCH', `/v1/devices/${m.id}/labels`, { set: { line: 'x' } });
  await eventually(
    () =>
      ctx.gws.every((g) =>
        ctx.members.every((m) => {
          const d = g.fleet.get(m.id);
          return d?.posture === 'affirming' && d.labels.line === 'x';
        }),
      ),
    'every gateway knows every member, affirming and labelled',
    15_000,
  );
});

it.after(async (ctx) => {
  await Promise.allSettled(ctx.members.map((m) => m.stop()));
  await ctx.gw4?.kill();
  for (const g of ctx.gws.reverse()) await g.close().catch(() => {});
  await ctx.env?.close();
  removeDir(ctx.work);
});

/** Packs and imports a release on gw1's host; every gateway appraises with it. */
async function release(ctx: Ctx, version: string, seq: number, files: TreeFiles, healthWindowMs = 300) {
  const bundle = await packApp(ctx.key.sign, ctx.work, version, seq, files, healthWindowMs);
  const gw1 = ctx.gws[0]!;
  const { record } = await importBundle({
    dir: ctx.env.dirs[0]!.dir,
    bundle,
    store: gw1.store,
    now: Date.now(),
  });
  await gw1.store.flush();
  await Promise.all(ctx.gws.map((g) => g.refreshPolicy()));
  return record;
}

async function view(ctx: Ctx, gw: number, id: string): Promise<RolloutView> {
  return (await api<{ rollout: RolloutView }>(ctx.env.dirs[gw]!, ctx.env.token, 'GET', `/v1/rollouts/${id}`))
    .rollout;
}

async function until(ctx: Ctx, gw: number, id: string, phases: readonly string[], timeoutMs = 30_000) {
  let v: RolloutView | undefined;
  await eventually(
    async () => {
      v = await view(ctx, gw, id);
      return phases.includes(v.phase);
    },
    `rollout ${id} ${phases.join(' or ')} on gw${gw + 1} (last: ${v?.phase}, ${JSON.stringify(v?.waves)})`,
    timeoutMs,
  );
  return v!;
}

async function startRollout(ctx: Ctx, gw: number, release: string): Promise<string> {
  const { rollout } = await api<{ rollout: RolloutView }>(
    ctx.env.dirs[gw]!,
    ctx.env.token,
    'POST',
    '/v1/rollouts',
    {
      swarm: SWARM,
      release,
      waves: '1,100%',
      timeouts: 'stage=30s,activate=30s',
    },
  );
  return rollout.id;
}

/** Every member got each command of the rollout under one id, however often it was sent. */
function oneIdPerCommand(ctx: Ctx, rollout: string): void {
  for (const m of ctx.members) {
    const byOp = new Map<string, Set<string>>();
    for (const c of ctx.received.get(m.id)!)
      if (c.rollout === rollout && c.op !== 'chunk')
        byOp.set(c.op, (byOp.get(c.op) ?? new Set()).add(toHex(c.id)));
    assert.ok(byOp.has('stage') && byOp.has('activate'), `${m.id}: staged and activated`);
    for (const [op, ids] of byOp) assert.is(ids.size, 1, `${m.id}: every ${op} it got had one id`);
  }
}

/** The comparable part of a view: what any gateway must show alike. */
const shown = (v: RolloutView) => ({
  phase: v.phase,
  waves: v.waves.map((w) => w.members.map((m) => [m.id, m.state, m.code, m.measured, m.fresh])),
  barrier: v.barrierDetail,
  digests: v.digests,
  inflight: v.inflight,
});

it('started on gw1: converged from the holders’ swarm rounds; operate via gw3; one view everywhere', async (ctx) => {
  const { env, gws, members } = ctx;
  const v2 = await release(ctx, '2.0.0', 2, V2);
  const id = await startRollout(ctx, 0, 'app@2.0.0');
  const done = await until(ctx, 0, id, ['completed']);
  assert.equal(
    done.waves.map((w) => w.members.length),
    [1, 2],
  );

  const r = (await gws[0]!.rollouts.get(id))!;
  for (const [i, m] of members.entries()) {
    const member = r.members[m.id]!;
    assert.is(member.state, 'converged', m.id);
    assert.is(member.measured, v2.digest);
    // Converged from a swarm round that the gateway holding the member issued after activation.
    const swarm = await sql<{ owner: string }>(
      env.database,
      "SELECT owner FROM rounds WHERE device_id = $1 AND reason = 'swarm' AND status = 'affirming' AND issued_at >= $2",
      [m.id, member.activatedAt],
    );
    assert.ok(swarm.length >= 1, `${m.id}: an affirming swarm round after its activate`);
    assert.ok(
      swarm.every((s) => s.owner === `gw${i + 1}`),
      `${m.id}: swarm rounds issued by gw${i + 1}`,
    );
    assert.equal(m.appLog(), [digestOf('1.0.0', V1), v2.digest], `${m.id}: the release measured once`);
    assert.is(m.restarts(), 1);
  }
  // The artifact reached gw2 and gw3 from the shared store: copied, checked, served from there.
  for (const d of env.dirs.slice(1, 3))
    assert.ok(existsSync(join(d.dir, v2.artifact.path)), `${d.name} holds ${v2.artifact.path}`);

  // The same rollout on every gateway's API.
  await eventually(
    async () =>
      JSON.stringify(shown(await view(ctx, 1, id))) === JSON.stringify(shown(await view(ctx, 0, id))),
    "gw2's view is gw1's",
  );
  assert.ok((await view(ctx, 1, id)).barrierDetail.holds);

  // An operation asked of gw3 goes out from gw1, to every member, with a token that verifies.
  const { operation } = await api<{ operation: { members: string[]; at: number } }>(
    env.dirs[2]!,
    env.token,
    'POST',
    `/v1/rollouts/${id}/operations`,
    { name: 'recipe', args: { recipe: 'b' }, at: '+1s' },
  );
  const ids = members.map((m) => m.id).sort();
  assert.equal(operation.members, ids);
  await eventually(
    () => members.every((m) => m.operationRuns().length === 1),
    'the handler ran on every member',
    10_000,
  );
  const ear = await api<object>(env.dirs[1]!, env.token, 'GET', '/v1/ear-key');
  const key = createPublicKey({ key: ear as never, format: 'jwk' });
  for (const m of members) {
    const claims = verifyOperateToken(m.operationToken()!, key, Date.now());
    assert.equal(
      [claims.rollout, claims.name, toHex(claims.digest), toHex(claims.members), claims.at],
      [id, 'recipe', v2.digest, toHex(membersDigest(ids)), operation.at],
    );
  }
  await eventually(
    async () => (await view(ctx, 1, id)).operations[0]?.state === 'done',
    'every member reported it',
  );

  // Another, for a moment ahead; the member on gw3 goes offline before it: the barrier breaks on
  // a gateway that does not own the rollout, and the owner cancels it on every member told.
  const at = Date.now() + 3000;
  const third = members[2]!;
  const told = () => ctx.received.get(third.id)!.filter((c) => c.op === 'operate').length;
  assert.is(told(), 1);
  await api(env.dirs[1]!, env.token, 'POST', `/v1/rollouts/${id}/operations`, { name: 'recipe', at });
  await eventually(() => told() === 2, 'the member on gw3 was told');
  await third.goOffline();
  await eventually(
    async () => (await view(ctx, 0, id)).operationsDetail[1]?.state === 'cancelled',
    'the operation cancelled before its time',
  );
  assert.ok(Date.now() < at, 'cancelled before `at`');
  await settle(Math.max(0, at - Date.now()) + 500);
  for (const m of members) assert.is(m.operationRuns().length, 1, `${m.id} did not run the cancelled one`);
  await third.comeBack();
  third.agent.agent.on('command', (c) => ctx.received.get(third.id)!.push(c));
  await eventually(
    async () => (await view(ctx, 1, id)).barrierDetail.holds,
    'the barrier holds again',
    15_000,
  );

  // The CLI of gw2 reads the rollout and commits it (the owner, gw1, does).
  const target = { dir: env.dirs[1]!.dir, apiPort: env.dirs[1]!.apiPort };
  const status = await gatewayCliAt(['rollout', 'status', id], target);
  assert.is(status.code, 0, status.stderr);
  assert.match(status.stdout, /Barrier \(all\): holds, 3 converged and fresh, 3 needed/);
  const commit = await gatewayCliAt(['rollout', 'commit', id], target);
  assert.is(commit.code, 0, commit.stderr);
  await until(ctx, 2, id, ['committed']);
  const [row] = await sql<{ owner: string }>(env.database, 'SELECT owner FROM rollouts WHERE id = $1', [id]);
  assert.is(row?.owner, 'gw1', 'gw1 owned it throughout');
});

it('the owner killed with SIGKILL mid-rollout: a survivor takes it over and completes it, the same ids', async (ctx) => {
  const { env, members } = ctx;
  const v3 = await release(ctx, '3.0.0', 3, V3, 1500);
  ctx.gw4 = await spawnGateway(env.dirs[3]!);
  const id = await startRollout(ctx, 3, 'app@3.0.0');
  // Killed while the second wave activates: commands in flight, health windows running.
  await eventually(
    async () => (await view(ctx, 0, id)).waves[1]?.members.some((m) => m.state === 'activating') === true,
    'the second wave activating',
    30_000,
  );
  await ctx.gw4.kill();
  const done = await until(ctx, 0, id, ['completed'], 40_000);
  assert.equal(
    done.waves.flatMap((w) => w.members).map((m) => m.state),
    ['converged', 'converged', 'converged'],
  );
  const [row] = await sql<{ owner: string }>(env.database, 'SELECT owner FROM rollouts WHERE id = $1', [id]);
  assert.ok(['gw1', 'gw2', 'gw3'].includes(row!.owner), `taken over by a survivor (${row?.owner})`);
  await settle(300);
  oneIdPerCommand(ctx, id);
  for (const m of members) {
    assert.is(m.restarts(), 2, `${m.id}: switched and restarted once for this release`);
    assert.equal(m.appLog().at(-1), v3.digest);
    assert.is(m.appLog().filter((d) => d === v3.digest).length, 1, `${m.id}: the release measured once`);
  }
  await api(env.dirs[2]!, env.token, 'POST', `/v1/rollouts/${id}/commit`);
  await until(ctx, 1, id, ['committed']);
});

it('Redis stopped while the rollout waits on a member of another gateway: it completes once Redis is back', async (ctx) => {
  const { env, members } = ctx;
  const v4 = await release(ctx, '4.0.0', 4, V4, 1500);
  // Owned by a gateway that does not hold the canary (the first member by id).
  const ids = members.map((m) => m.id);
  const canary = ids.indexOf([...ids].sort()[0]!);
  const owner = (canary + 1) % 3;
  const other = members[(canary + 2) % 3]!;
  const id = await startRollout(ctx, owner, 'app@4.0.0');
  await eventually(
    async () => (await view(ctx, owner, id)).waves[0]?.members[0]?.state === 'activating',
    'the canary activating',
    30_000,
  );
  await env.redis.stop();
  await settle(1500);
  const meanwhile = await view(ctx, owner, id);
  assert.is(meanwhile.phase, 'running');
  assert.equal(
    ctx.received.get(other.id)!.filter((c) => c.rollout === id),
    [],
    'nothing reached the member of the third gateway while the bus was away',
  );
  await env.redis.start();
  await until(ctx, owner, id, ['completed'], 45_000);
  oneIdPerCommand(ctx, id);
  for (const m of members) assert.equal(m.appLog().at(-1), v4.digest, `${m.id} runs 4.0.0`);
});

it.run();
