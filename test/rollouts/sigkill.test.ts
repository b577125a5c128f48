import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig } from '../../gateway/config.ts';
import { importBundle } from '../../gateway/releases/import.ts';
import type { RolloutView } from '../../gateway/rollouts/view.ts';
import { SqliteStore } from '../../gateway/store/sqlite.ts';
import type { Command } from '../../shared/protocol/index.ts';
import { toHex } from '../../shared/tpm/bytes.ts';
import { type GatewayProcess, gatewayDir, startGatewayProcess } from '../support/gateway-process.ts';
import { eventually, settle } from '../support/operator.ts';
import { removeDir, tempDir } from '../support/tmp.ts';
import {
  digestOf,
  type Member,
  packApp,
  REFERENCE,
  startMember,
  trustReleaseKey,
  V1,
  V2,
} from './support.ts';

// The gateway killed with SIGKILL in the middle of a rollout, members being activated: it runs as
// its own process (the CLI), so nothing gets to flush or close. Restarted on the same directory, it
// resumes the rollout from the store; the commands that were in flight go out again with the same
// ids as the members reconnect and attest, and no member acts twice: one switch, one restart, one
// measurement of the release each.

interface Ctx {
  dir: string;
  work: string;
  port: number;
  gateway?: GatewayProcess;
  members: Member[];
}
const it = suite<Ctx>('gateway killed with SIGKILL mid-rollout', { dir: '', work: '', port: 0, members: [] });

it.before(async (ctx) => {
  ctx.dir = tempDir('vigil-kill-rollout-');
  ctx.work = tempDir('vigil-kill-work-');
  ({ port: ctx.port } = await gatewayDir(ctx.dir, {
    admission: { mode: 'open' },
    rounds: { periodicMs: 60_000, deadlineMs: 2000 },
    referenceValues: REFERENCE(),
  }));
});

it.after(async (ctx) => {
  await Promise.allSettled(ctx.members.map((m) => m.stop()));
  await ctx.gateway?.kill();
  removeDir(ctx.dir);
  removeDir(ctx.work);
});

it('kill -9 while members activate: the rollout resumes, the same command ids, no member acts twice', async (ctx) => {
  const key = trustReleaseKey(ctx.dir);
  const bundle = await packApp(key.sign, ctx.work, '2.0.0', 2, V2, 1500);
  const store = new SqliteStore(loadConfig(ctx.dir).database);
  const v2 = (await importBundle({ dir: ctx.dir, bundle, store, now: Date.now() })).record.digest;
  await store.close();

  ctx.gateway = await startGatewayProcess(ctx.dir, ctx.port);
  let base = ctx.gateway.api;
  const token = readFileSync(join(ctx.dir, 'operator.token'), 'utf8').trim();
  const api = async <T>(method: string, path: string, body?: unknown) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    return { status: res.status, json: (await res.json()) as T };
  };
  const target = {
    url: `mqtts://localhost:${ctx.port}`,
    caPath: join(ctx.dir, 'ca.pem'),
    releaseKey: key.verify,
  };
  ctx.members = await Promise.all([0, 1, 2].map(() => startMember(target)));
  const received = new Map<string, Command[]>(ctx.members.map((m) => [m.id, []]));
  for (const m of ctx.members) m.agent.agent.on('command', (c) => received.get(m.id)!.push(c));
  await eventually(
    async () => {
      for (const m of ctx.members) {
        const d = await api<{ device: { posture: string } }>('GET', `/v1/devices/${m.id}`);
        if (d.json.device?.posture !== 'affirming') return false;
      }
      return true;
    },
    'members affirming',
    15_000,
  );
  for (const m of ctx.members) {
    const r = await api('PATCH', `/v1/devices/${m.id}/labels`, { set: { line: 'k' } });
    assert.is(r.status, 200);
  }

  const started = await api<{ rollout: RolloutView }>('POST', '/v1/rollouts', {
    swarm: 'line=k',
    release: 'app@2.0.0',
    waves: '1,100%',
    timeouts: 'stage=30s,activate=30s',
  });
  assert.is(started.status, 201, JSON.stringify(started.json));
  const id = started.json.rollout.id;
  const rollout = async () => (await api<{ rollout: RolloutView }>('GET', `/v1/rollouts/${id}`)).json.rollout;
  // Kill once the second wave is being activated: activations in flight, health windows running.
  await eventually(
    async () => (await rollout()).waves[1]?.members.some((m) => m.state === 'activating') === true,
    'the second wave activating',
    20_000,
  );
  await ctx.gateway.kill();
  assert.is(ctx.gateway.child.signalCode, 'SIGKILL');

  ctx.gateway = await startGatewayProcess(ctx.dir, ctx.port);
  base = ctx.gateway.api;
  await eventually(
    async () => (await rollout()).phase === 'completed',
    'the rollout completed after the restart',
    30_000,
  );
  const done = await rollout();
  assert.equal(
    done.waves.flatMap((w) => w.members).map((m) => m.state),
    ['converged', 'converged', 'converged'],
  );
  await settle(300);
  for (const m of ctx.members) {
    assert.is(m.restarts(), 1, `${m.id}: switched and restarted once`);
    assert.equal(m.appLog(), [digestOf('1.0.0', V1), v2], `${m.id}: the release measured once`);
    const activates = received.get(m.id)!.filter((c) => c.op === 'activate');
    assert.ok(activates.length >= 1);
    assert.equal(
      new Set(activates.map((c) => toHex(c.id))).size,
      1,
      `${m.id}: every activate it got had one id`,
    );
    const stages = received.get(m.id)!.filter((c) => c.op === 'stage');
    assert.equal(new Set(stages.map((c) => toHex(c.id))).size, 1, `${m.id}: one stage id`);
  }
  assert.ok(
    ctx.members.some((m) => received.get(m.id)!.filter((c) => c.op === 'activate').length > 1),
    'an activate in flight at the kill went out again after the restart',
  );
});

it.run();
