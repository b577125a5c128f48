import * as assert from 'uvu/assert';
import { barrier } from '../../gateway/rollouts/machine.ts';
import type { RolloutView } from '../../gateway/rollouts/view.ts';
import type { Command } from '../../shared/protocol/index.ts';
import { toHex } from '../../shared/tpm/bytes.ts';
import { eventually, settle } from '../support/operator.ts';
import { affirming, type Member, phase, swarmSuite, V2 } from './support.ts';

// Members that are not there: one offline when its wave starts (absent), one gone between
// convergence and the operation. Under a quorum that does not require them the barrier holds (it
// would not under `all`); an operation released under it is cancelled on every member told once
// the barrier breaks before its time, and never runs; back online, the absent member re-attests and
// joins the trailing wave, and the one that was gone gets its cancel, with the same command id.

const it = swarmSuite('absent members, a quorum, a cancelled operation', 3);

it('absent, quorum, cancel before `at`, rejoin in the trailing wave', async (ctx) => {
  const bed = ctx.bed!;
  const gw = bed.gw.gateway;
  const [a, b, d] = [...ctx.members].sort((x, y) => (x.id < y.id ? -1 : 1)) as [Member, Member, Member];
  bed.label([a.id, b.id, d.id], 'line=d');
  const v2 = await bed.importRelease('2.0.0', 2, V2);
  await d.goOffline();
  await eventually(() => gw.connections.attestedOf(d.id) === undefined, 'd disconnected');

  const id = await bed.startRollout({
    swarm: 'line=d',
    release: 'app@2.0.0',
    waves: '100%',
    barrier: '2',
    timeouts: 'stage=20s,activate=20s',
  });
  const done = await phase(bed, id, ['completed']);
  const member = (x: Member, v = done) => v.waves.flatMap((w) => w.members).find((m) => m.id === x.id)!;
  assert.is(member(d).state, 'absent');
  assert.is(member(d).code, 'absent');
  assert.is(member(a).state, 'converged');
  assert.is(member(b).state, 'converged');
  assert.equal(done.barrierDetail, { holds: true, needed: 2, good: [a.id, b.id], missing: [d.id] });
  const fresh = (m: string) => (gw.connections.attestedOf(m)?.trustedUntil ?? 0) > Date.now();
  const r = (await gw.rollouts.get(id))!;
  assert.not.ok(
    barrier({ ...r, spec: { ...r.spec, barrier: { kind: 'all' } } }, fresh).holds,
    'not under all',
  );

  // Released under the quorum, for a moment ahead; then b goes: the barrier breaks before `at`.
  const at = Date.now() + 2500;
  const toOldB: Command[] = [];
  b.agent.agent.on('command', (c) => toOldB.push(c));
  const op = await bed.api<{ operation: { id: string; members: string[] } }>(
    'POST',
    `/v1/rollouts/${id}/operations`,
    {
      name: 'recipe',
      at,
    },
  );
  assert.is(op.status, 201, JSON.stringify(op.json));
  assert.equal(op.json.operation.members, [a.id, b.id]);
  await eventually(() => toOldB.some((c) => c.op === 'operate'), 'b was told');
  await b.goOffline();
  await eventually(
    async () => (await bed.rollout(id)).operationsDetail[0]?.results[a.id]?.state === 'cancelled',
    'a cancelled it',
  );
  const cancelled = (await bed.rollout(id)).operationsDetail[0]!;
  assert.is(cancelled.state, 'cancelled');
  assert.match(cancelled.reasons[0]!, /the barrier broke before/);
  await settle(Math.max(0, at - Date.now()) + 500);
  assert.equal(a.operationRuns(), [], 'a never ran it');

  // Back online: d re-attests and joins the trailing wave. b, down at `at`, does not run it late,
  // and is sent the cancel again, under the id it had.
  const told = (await gw.rollouts.get(id))!.operations[0]!;
  const cancelId = told.cancels![b.id]!;
  await Promise.all([d.comeBack(), b.comeBack()]);
  const toB: Command[] = [];
  b.agent.agent.on('command', (c) => toB.push(c));
  await affirming(bed, [b, d]);
  await eventually(
    async () => (await bed.rollout(id)).operationsDetail[0]?.results[b.id] !== undefined,
    'b reported',
  );
  const result = (await bed.rollout(id)).operationsDetail[0]!.results[b.id]!;
  assert.is(result.state, 'failed');
  assert.match(result.detail!, /not run late/);
  await eventually(() => toB.some((c) => c.op === 'cancel'), 'the cancel went to b again');
  const cancel = toB.find((c) => c.op === 'cancel')!;
  assert.equal(
    [toHex(cancel.id), cancel.op === 'cancel' && toHex(cancel.command)],
    [cancelId, told.told[b.id]],
    'the same cancel, naming the operate command b was told',
  );
  assert.not.ok(
    toB.some((c) => c.op === 'operate'),
    'a cancelled operation is not sent again',
  );
  // The rollout was completed before d came back: it is completed again once d's trailing wave is.
  let back: RolloutView | undefined;
  await eventually(async () => {
    back = await bed.rollout(id);
    return back.phase === 'completed' && back.waves.some((w) => w.wave === 'trailing');
  }, 'd in a completed trailing wave');
  const trailing = back!.waves.find((w) => w.wave === 'trailing')!;
  assert.equal(
    trailing.members.map((m) => [m.id, m.state]),
    [[d.id, 'converged']],
  );
  assert.equal(b.operationRuns(), [], 'b never ran it');
  assert.equal(d.appLog().at(-1), v2);

  // Everyone is there now: the next operation reaches all three, once each.
  const next = await bed.api<{ operation: { members: string[] } }>('POST', `/v1/rollouts/${id}/operations`, {
    name: 'recipe',
  });
  assert.is(next.status, 201, JSON.stringify(next.json));
  assert.equal(next.json.operation.members, [a.id, b.id, d.id]);
  await eventually(() => [a, b, d].every((m) => m.operationRuns().length === 1), 'the handler ran on each');
});

it.run();
