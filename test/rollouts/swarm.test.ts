import * as assert from 'uvu/assert';
import { membersDigest, verifyOperateToken } from '../../shared/protocol/operate-token.ts';
import { toHex } from '../../shared/tpm/bytes.ts';
import { eventually } from '../support/operator.ts';
import { digestOf, phase, swarmSuite, V1, V2 } from './support.ts';

// A swarm of five real agents on swtpm moved to a release by the operator's commands: the canary
// first, the rest once it converged; each member counted as converged only from a swarm round
// appraised after its activation; an operation released behind the barrier reaching every member
// with a token a third party verifies with the gateway's key, run once on each; then the commit,
// after which the swarm refuses to go back to that seq.

const it = swarmSuite('a swarm rolled to a release, then an operation behind the barrier', 5);

it('canary, then the rest; convergence from swarm rounds; the operation once on each; commit', async (ctx) => {
  const bed = ctx.bed!;
  const { members } = ctx;
  const ids = members.map((m) => m.id).sort();
  bed.label(ids, 'line=a');
  const v2 = await bed.importRelease('2.0.0', 2, V2);
  assert.is(v2, digestOf('2.0.0', V2));

  // Reports as each agent sent them, in order, with the time.
  const reports: { member: string; state: string; at: number }[] = [];
  for (const m of members)
    m.agent.agent.on('report', (r) => reports.push({ member: m.id, state: r.state, at: Date.now() }));

  const started = await bed.cli([
    'rollout',
    'start',
    '--swarm',
    'line=a',
    '--release',
    'app@2.0.0',
    '--waves',
    '1,100%',
    '--timeout',
    'stage=20s,activate=20s',
  ]);
  assert.is(started.code, 0, started.stderr);
  const id = started.stdout.trim();
  assert.match(id, /^r-[0-9a-f]{12}$/);

  const done = await phase(bed, id, ['completed']);
  assert.equal(
    done.waves.map((w) => w.members.length),
    [1, 4],
    'a canary of one, then the other four',
  );
  const canary = done.waves[0]!.members[0]!.id;
  assert.is(canary, ids[0], 'the canary is the first member by id');

  // Converged only from a swarm round after activation, showing the target digest.
  const r = (await bed.gw.gateway.rollouts.get(id))!;
  for (const m of members) {
    const member = r.members[m.id]!;
    assert.is(member.state, 'converged', m.id);
    assert.is(member.measured, v2);
    const rounds = await bed.gw.gateway.store.recentRounds(m.id, 20);
    const swarm = rounds.filter(
      (x) => x.reason === 'swarm' && x.issuedAt >= member.activatedAt! && x.status === 'affirming',
    );
    assert.ok(swarm.length >= 1, `${m.id}: an affirming swarm round after its activate`);
    assert.equal(m.appLog(), [digestOf('1.0.0', V1), v2], `${m.id}: its log ends with the release, once`);
    assert.is(m.restarts(), 1, `${m.id}: restarted once, into the release`);
  }
  // The rest were asked to stage only once the canary's swarm round had shown the target.
  const canaryRound = (await bed.gw.gateway.store.recentRounds(canary, 20)).find(
    (x) => x.reason === 'swarm' && x.status === 'affirming',
  )!;
  for (const m of members.filter((m) => m.id !== canary)) {
    const first = reports.find((x) => x.member === m.id)!;
    assert.ok(first.at >= canaryRound.appraisedAt!, `${m.id} fetched only after the canary converged`);
  }
  assert.equal(
    done.digests.map((g) => [g.digest, g.version, g.members.length]),
    [[v2, '2.0.0', 5]],
  );
  assert.ok(done.barrierDetail.holds);

  // The operation, through the CLI, at a time just ahead.
  const op = await bed.cli([
    'operate',
    id,
    'recipe',
    '--args',
    '{"recipe":"b","speed":3}',
    '--at',
    '+1s',
    '--json',
  ]);
  assert.is(op.code, 0, op.stderr);
  const released = JSON.parse(op.stdout) as { id: string; members: string[]; token: string; at: number };
  assert.equal(released.members, ids);
  await eventually(
    () => members.every((m) => m.operationRuns().length === 1),
    'the handler ran on every member',
    10_000,
  );
  const key = await bed.earKey();
  for (const m of members) {
    const claims = verifyOperateToken(m.operationToken()!, key, Date.now());
    assert.equal(
      { ...claims, digest: toHex(claims.digest), members: toHex(claims.members) },
      {
        swarm: 'line=a',
        rollout: id,
        name: 'recipe',
        digest: v2,
        members: toHex(membersDigest(ids)),
        at: released.at,
        exp: claims.exp,
      },
      `${m.id}: the token names the swarm, the release and every member`,
    );
    assert.ok(released.at >= Date.now() - 10_000 && claims.exp > released.at);
  }
  const operated = await phase(bed, id, ['completed']);
  await eventually(
    async () => (await bed.rollout(id)).operations[0]?.state === 'done',
    'every member reported the operation',
  );
  const view = await bed.rollout(id);
  assert.equal(
    Object.values(view.operationsDetail[0]!.results).map((x) => x.state),
    ['done', 'done', 'done', 'done', 'done'],
  );
  assert.ok(operated.operations.length === 1);
  for (const m of members) assert.equal(m.operationRuns().length, 1, `${m.id}: the handler ran once`);

  // Status as the operator reads it (a watch stops once nothing moves without an operator).
  const status = await bed.cli(['rollout', 'status', id, '--watch']);
  assert.is(status.code, 0, status.stderr);
  assert.match(status.stdout, new RegExp(`Rollout ${id}: app 2\\.0\\.0 \\(seq 2\\) to line=a, completed`));
  assert.match(status.stdout, /Barrier \(all\): holds, 5 converged and fresh, 5 needed/);
  assert.match(status.stdout, /Wave 0 \(canary\): 1\/1 converged/);

  // Commit: the floor. Going back to seq 2 is refused without --force.
  const committed = await bed.api<{ rollout: { phase: string } }>('POST', `/v1/rollouts/${id}/commit`);
  assert.is(committed.status, 200);
  await phase(bed, id, ['committed']);
  assert.equal(
    (await bed.gw.gateway.store.swarmFloors('line=a')).map((f) => [f.name, f.seq, f.digest, f.rollout]),
    [['app', 2, v2, id]],
  );
  const again = await bed.api<{ error: { code: string; message: string } }>('POST', '/v1/rollouts', {
    swarm: 'line=a',
    release: 'app@2.0.0',
  });
  assert.is(again.status, 409);
  assert.is(again.json.error.code, 'rollback-refused');
  assert.match(again.json.error.message, /not above the swarm's committed floor 2/);
});

it.run();
