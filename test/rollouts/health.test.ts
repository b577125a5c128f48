import * as assert from 'uvu/assert';
import { eventually } from '../support/operator.ts';
import { digestOf, phase, SICK, swarmSuite, V1 } from './support.ts';

// A release whose health probe fails on the members: each switches back by itself and measures the
// old tree again (its log's last entry is the old digest), reports rolled-back health-failed; the
// canary wave's abort threshold stops the rollout once its minimum of finished members is reached,
// the next wave never starts, and no operation can be released.

const it = swarmSuite('a release that fails its health check', 3);

it('members roll back by themselves; the abort share stops the rollout after its minimum; nothing released', async (ctx) => {
  const bed = ctx.bed!;
  const ids = ctx.members.map((m) => m.id).sort();
  bed.label(ids, 'line=b');
  await bed.importRelease('2.0.0', 2, SICK);
  const id = await bed.startRollout({
    swarm: 'line=b',
    release: 'app@2.0.0',
    waves: '2,100%',
    abort: '40%,min=2',
    timeouts: { stage: '20s', activate: '20s' },
  });
  const v = await phase(bed, id, ['aborted']);
  assert.match(v.why!, /2 of 2 finished members failed \(abort above 40% after 2\)/);
  const [first, second, third] = v.waves.flatMap((w) => w.members);
  for (const m of [first!, second!]) {
    assert.is(m.state, 'rolled-back', m.id);
    assert.is(m.code, 'health-failed');
    assert.match(m.detail!, /health check failed/);
  }
  assert.is(third!.state, 'waiting', 'the second wave never started');
  const old = digestOf('1.0.0', V1);
  for (const m of ctx.members.filter((m) => m.id !== third!.id)) {
    const log = m.appLog();
    assert.is(log.at(-1), old, `${m.id}: the last entry is the old tree again`);
    assert.is(log.length, 3, 'v1, the release, v1 again');
    assert.is(m.restarts(), 2, 'restarted into the release, then back');
  }
  assert.equal(ctx.members.find((m) => m.id === third!.id)!.appLog(), [old], 'never touched');
  // Fresh quotes of the whole swarm agree: the release came and went, the old tree runs.
  const batch = await bed.api<{ id: string }>('POST', '/v1/batches', { label: 'line=b' });
  await eventually(
    async () => (await bed.api<{ done: boolean }>('GET', `/v1/batches/${batch.json.id}`)).json.done,
    'the swarm attested',
  );
  const after = await bed.rollout(id);
  assert.equal(
    after.digests.map((g) => [g.digest, g.version, g.members.length]),
    [[old, '1.0.0', 3]],
  );
  for (const m of [first!, second!])
    assert.is(
      bed.gw.gateway.fleet.get(m.id)!.swLog!.count,
      4,
      'agent, v1, release, v1: replayed from the quote',
    );

  const op = await bed.refusedOperation(id);
  assert.equal([op.status, op.code], [409, 'rollout-refused'], 'an aborted rollout releases nothing');
  assert.equal((await bed.rollout(id)).operationsDetail, []);
  for (const m of ctx.members) assert.equal(m.operationRuns(), []);
});

it.run();
