import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  barrier,
  createRollout,
  type Effect,
  type RolloutEvent,
  type StepContext,
  step,
} from '../../gateway/rollouts/machine.ts';
import type { Rollout, RolloutSpec } from '../../gateway/rollouts/model.ts';
import { parseQuota, parseQuotas, waveSizes } from '../../gateway/rollouts/quota.ts';

// The rollout state machine without a gateway: waves, convergence only from quotes, the abort
// share, the barrier and operations, deadlines, pause, rollback and commit.

const it = suite('rollout state machine');

const TARGET = 'ab'.repeat(32);
const OLD = 'cd'.repeat(32);
const ids = ['m1', 'm2', 'm3', 'm4', 'm5', 'm6'];

function spec(over: Partial<RolloutSpec> = {}): RolloutSpec {
  return {
    id: 'r1',
    swarm: 'line=a',
    release: { name: 'app', version: '2.0', seq: 2, digest: TARGET },
    waves: parseQuotas('1,100%', 'waves'),
    successPercent: 100,
    abort: { percent: 20, min: 2 },
    barrier: { kind: 'all' },
    required: [],
    timeouts: { stageMs: 60_000, activateMs: 60_000, commandMs: 60_000 },
    createdAt: 0,
    ...over,
  };
}

class Driver {
  now = 1000;
  n = 0;
  fresh = new Set<string>(ids);
  effects: Effect[] = [];
  refused: string | undefined;
  constructor(public r: Rollout) {}
  get ctx(): StepContext {
    return { now: this.now, newId: () => `c${++this.n}`, fresh: (m) => this.fresh.has(m) };
  }
  on(e: RolloutEvent): this {
    const s = step(this.r, e, this.ctx);
    this.r = s.rollout;
    this.effects.push(...s.effects);
    this.refused = s.refused;
    return this;
  }
  sent(member: string, op: string) {
    return this.effects.filter((e) => e.kind === 'send' && e.member === member && e.command.op === op);
  }
  cmd(member: string): string {
    return this.r.members[member]!.command!.id;
  }
  /** The member goes through stage → staged → activate → activated → a swarm round showing `digest`. */
  converge(member: string, digest = TARGET): this {
    this.on({ kind: 'report', member, command: this.cmd(member), state: 'staged' });
    this.on({ kind: 'report', member, command: this.cmd(member), state: 'activated' });
    return this.on({
      kind: 'round',
      member,
      issuedAt: this.now,
      reason: 'swarm',
      affirming: true,
      measured: digest,
    });
  }
  /** Asks for an operation the way the engine does: the token names the barrier's members. */
  operate(name: string, at: number): this {
    const members = barrier(this.r, (m) => this.fresh.has(m)).good;
    return this.on({ kind: 'operate', name, at, exp: at + 60_000, args: 'a0', token: 'ff', members });
  }
  state(member: string) {
    return this.r.members[member]!.state;
  }
}

const start = (over: Partial<RolloutSpec> = {}, members = ids) =>
  new Driver(createRollout(spec(over), members, 0)).on({ kind: 'start' });

it('quotas: waves are cumulative, shares round up, the last wave reaches everyone', () => {
  assert.equal(waveSizes(parseQuotas('1,50%,100%', 'w'), 10), [1, 4, 5]);
  assert.equal(waveSizes(parseQuotas('1,50%', 'w'), 10), [1, 4, 5]);
  assert.equal(waveSizes(parseQuotas('2', 'w'), 2), [2]);
  assert.throws(() => parseQuota('0', 'waves'), /neither a count/);
  assert.throws(() => parseQuota('150%', 'waves'), /150%/);
});

it('the canary goes first; the rest only once it converged, and only from a quote', () => {
  const d = start();
  assert.equal(d.sent('m1', 'stage').length, 1, 'the canary is staged');
  assert.equal(d.sent('m2', 'stage').length, 0);
  d.on({ kind: 'report', member: 'm1', command: d.cmd('m1'), state: 'staged' });
  assert.equal(d.sent('m1', 'activate').length, 1);
  d.on({ kind: 'report', member: 'm1', command: d.cmd('m1'), state: 'activated' });
  assert.is(d.state('m1'), 'verifying', 'a report of activated converges nobody');
  assert.ok(d.effects.some((e) => e.kind === 'swarm-round' && e.member === 'm1'));
  assert.equal(d.sent('m2', 'stage').length, 0, 'the next wave waits for the quote');
  d.on({
    kind: 'round',
    member: 'm1',
    issuedAt: d.now - 1,
    reason: 'swarm',
    affirming: true,
    measured: TARGET,
  });
  assert.is(d.state('m1'), 'verifying', 'a round issued before activate proves nothing');
  d.on({ kind: 'round', member: 'm1', issuedAt: d.now, reason: 'swarm', affirming: true, measured: TARGET });
  assert.is(d.state('m1'), 'converged');
  for (const m of ids.slice(1)) assert.equal(d.sent(m, 'stage').length, 1, `${m} staged in wave 2`);
  for (const m of ids.slice(1)) d.converge(m);
  assert.is(d.r.phase, 'completed');
  assert.ok(barrier(d.r, (m) => d.fresh.has(m)).holds);
});

it('a device that says activated but whose quote shows the old tree: claim-mismatch, paused, no barrier', () => {
  const d = start();
  d.converge('m1', OLD);
  assert.is(d.state('m1'), 'failed');
  assert.is(d.r.members.m1!.code, 'claim-mismatch');
  assert.is(d.r.phase, 'paused');
  assert.match(d.r.why!, /claim-mismatch on m1/);
  assert.not.ok(barrier(d.r, () => true).holds);
  d.operate('switch', d.now + 1000);
  assert.match(d.refused!, /barrier does not hold/);
});

it('health failures roll back; the abort share stops the rollout after its minimum; nothing released', () => {
  const d = start({ waves: parseQuotas('3,100%', 'w'), successPercent: 50, abort: { percent: 40, min: 3 } });
  d.converge('m1');
  d.on({ kind: 'report', member: 'm2', command: d.cmd('m2'), state: 'staged' });
  d.on({ kind: 'report', member: 'm2', command: d.cmd('m2'), state: 'rolled-back', code: 'health-failed' });
  assert.is(d.r.phase, 'running', 'one failure of two finished: the minimum is not reached');
  d.on({ kind: 'report', member: 'm3', command: d.cmd('m3'), state: 'failed', code: 'artifact-invalid' });
  assert.is(d.r.phase, 'aborted');
  assert.match(d.r.why!, /2 of 3 finished members failed/);
  assert.equal(d.sent('m4', 'stage').length, 0, 'the next wave never started');
  d.operate('go', d.now);
  assert.ok(d.refused);
  d.on({ kind: 'cancel' });
  assert.is(d.r.phase, 'cancelled', 'an aborted rollout is cancelled to free its swarm without rolling back');
});

it('an absent member: the barrier fails under all, holds under a quorum; back online it joins', () => {
  const d = start({ waves: parseQuotas('100%', 'w'), barrier: parseQuota('5', 'b') });
  d.on({ kind: 'unreachable', member: 'm6', detail: 'not connected' });
  assert.is(d.state('m6'), 'absent');
  for (const m of ids.slice(0, 5)) d.converge(m);
  assert.is(d.r.phase, 'completed');
  assert.ok(barrier(d.r, () => true).holds, 'five of six under a quorum of five');
  const all = new Driver(createRollout(spec({ waves: parseQuotas('100%', 'w') }), ids, 0)).on({
    kind: 'start',
  });
  all.on({ kind: 'unreachable', member: 'm6', detail: 'not connected' });
  for (const m of ids.slice(0, 5)) all.converge(m);
  assert.not.ok(barrier(all.r, () => true).holds, 'not under all');
  d.r = { ...d.r, phase: 'running' };
  d.on({ kind: 'attested', member: 'm6' });
  assert.is(d.state('m6'), 'staging', 'back online: staged in the trailing wave');
});

it('a required member is always required', () => {
  const d = start({ waves: parseQuotas('100%', 'w'), barrier: parseQuota('50%', 'b'), required: ['m6'] });
  for (const m of ids.slice(0, 5)) d.converge(m);
  assert.not.ok(barrier(d.r, () => true).holds);
  d.operate('go', d.now);
  assert.match(d.refused!, /required but not converged: m6/);
});

it('operate reaches every converged member; a break before `at` cancels it on every member told', () => {
  const d = start({ waves: parseQuotas('100%', 'w') });
  for (const m of ids) d.converge(m);
  d.operate('recipe-b', d.now + 5000);
  assert.is(d.refused, undefined);
  const op = d.r.operations[0]!;
  assert.equal(Object.keys(op.told).sort(), ids);
  for (const m of ids) assert.equal(d.sent(m, 'operate').length, 1);
  d.fresh.delete('m3'); // m3's posture lapses
  d.on({ kind: 'lost', member: 'm3' });
  assert.is(d.r.operations[0]!.state, 'cancelled');
  for (const m of ids) {
    const cancels = d.sent(m, 'cancel');
    assert.equal(cancels.length, 1, m);
    assert.equal(cancels[0]!.kind === 'send' && cancels[0]!.command, { op: 'cancel', command: op.told[m] });
  }
});

it('a step not done by its deadline fails with timed-out', () => {
  const d = start();
  d.now += 60_000;
  d.on({ kind: 'tick' });
  assert.is(d.state('m1'), 'failed');
  assert.is(d.r.members.m1!.code, 'timed-out');
});

it('pause holds activation; resume activates what staged meanwhile; rollback reaches every activated member', () => {
  const d = start({ waves: parseQuotas('100%', 'w') });
  d.on({ kind: 'pause' });
  assert.is(d.r.phase, 'paused');
  d.on({ kind: 'report', member: 'm1', command: d.cmd('m1'), state: 'staged' });
  assert.equal(d.sent('m1', 'activate').length, 0, 'not activated while paused');
  assert.is(d.state('m1'), 'staged');
  d.on({ kind: 'pause' });
  assert.match(d.refused!, /not running/);
  d.on({ kind: 'resume' });
  assert.equal(d.sent('m1', 'activate').length, 1, 'activated on resume');
  assert.is(d.state('m1'), 'activating');
  d.converge('m2');
  d.on({ kind: 'rollback' });
  assert.is(d.r.phase, 'rolling-back');
  assert.equal(d.sent('m2', 'rollback').length, 1);
  assert.equal(d.sent('m1', 'rollback').length, 1, 'activating: switched back too');
  assert.equal(d.sent('m3', 'rollback').length, 0, 'never activated: nothing to roll back');
  assert.equal(
    d.sent('m3', 'cancel').map((e) => e.kind === 'send' && e.command),
    [{ op: 'cancel', command: d.r.members.m3!.command!.id }],
    'its staging is called off',
  );
  d.on({ kind: 'report', member: 'm2', command: d.cmd('m2'), state: 'rolled-back' });
  assert.is(d.r.phase, 'rolling-back', 'm1 has not reported yet');
  d.on({ kind: 'report', member: 'm1', command: d.cmd('m1'), state: 'rolled-back' });
  assert.is(d.r.phase, 'rolled-back');
});

it('commit once completed; reports from a command not current are ignored', () => {
  const d = start({ waves: parseQuotas('100%', 'w') });
  d.on({ kind: 'commit' });
  assert.match(d.refused!, /commit once every member finished/);
  for (const m of ids) d.converge(m);
  d.on({ kind: 'report', member: 'm1', command: 'c-unknown', state: 'committed' });
  assert.is(d.state('m1'), 'converged');
  d.on({ kind: 'commit' });
  for (const m of ids) d.on({ kind: 'report', member: m, command: d.cmd(m), state: 'committed' });
  assert.is(d.r.phase, 'committed');
});

it('every command stays in flight until a report ends it or its deadline passes', () => {
  const d = start();
  const stage = d.cmd('m1');
  assert.equal(d.r.inflight[stage], { member: 'm1', command: { op: 'stage' }, deadlineAt: d.now + 60_000 });
  d.on({ kind: 'report', member: 'm1', command: stage, state: 'fetching' });
  assert.ok(d.r.inflight[stage], 'fetching does not end a staging');
  d.on({ kind: 'report', member: 'm1', command: stage, state: 'staged' });
  assert.is(d.r.inflight[stage], undefined);
  const activate = d.cmd('m1');
  assert.equal(d.r.inflight[activate]?.command.op, 'activate');
  d.on({ kind: 'report', member: 'm1', command: activate, state: 'activated' });
  assert.equal(Object.keys(d.r.inflight), [], 'nothing left to send again');
});

it('a stage that times out is called off on the device', () => {
  const d = start();
  const stage = d.cmd('m1');
  d.now += 60_000;
  d.on({ kind: 'tick' });
  assert.is(d.r.members.m1!.code, 'timed-out');
  const cancels = d.sent('m1', 'cancel');
  assert.equal(cancels.length, 1);
  assert.equal(cancels[0]!.kind === 'send' && cancels[0]!.command, { op: 'cancel', command: stage });
  assert.is(d.r.inflight[stage], undefined);
});

it('only a swarm round issued after activate converges; an unanswered one shows nothing', () => {
  const d = start();
  d.on({ kind: 'report', member: 'm1', command: d.cmd('m1'), state: 'staged' });
  d.on({ kind: 'report', member: 'm1', command: d.cmd('m1'), state: 'activated' });
  d.on({
    kind: 'round',
    member: 'm1',
    issuedAt: d.now,
    reason: 'onboard',
    affirming: true,
    measured: TARGET,
  });
  assert.is(d.state('m1'), 'verifying', 'the onboarding round after a restart is not the swarm round');
  d.on({ kind: 'round', member: 'm1', issuedAt: d.now, reason: 'swarm', answered: false, affirming: false });
  assert.is(d.state('m1'), 'verifying', 'a round nobody answered proves nothing either way');
  d.on({ kind: 'attested', member: 'm1' });
  assert.equal(d.effects.filter((e) => e.kind === 'swarm-round').length, 2, 'asked again once attested');
  d.on({
    kind: 'round',
    member: 'm1',
    issuedAt: d.now,
    reason: 'swarm',
    affirming: false,
    code: 'sw-not-allowed',
  });
  assert.is(d.state('m1'), 'failed');
  assert.is(d.r.members.m1!.code, 'appraisal-failed');
});

it('absent at wave start without a fresh connection; back, it joins the trailing wave after the planned ones', () => {
  const d = new Driver(
    createRollout(spec({ waves: parseQuotas('3,100%', 'w'), successPercent: 50 }), ids, 0),
  );
  d.fresh.delete('m2');
  d.on({ kind: 'start' });
  assert.is(d.state('m2'), 'absent');
  assert.equal(d.sent('m2', 'stage').length, 0, 'nothing sent to a device that cannot be asked');
  d.fresh.add('m2');
  d.on({ kind: 'attested', member: 'm2' });
  assert.is(d.r.members.m2!.wave, d.r.waves, 'moved to the trailing wave');
  assert.is(d.state('m2'), 'waiting', 'the planned waves go first');
  d.converge('m1');
  assert.equal(d.sent('m4', 'stage').length, 1, 'wave 2 started: 1 of 2 remaining in wave 1 converged');
  assert.is(d.state('m2'), 'staging', 'the trailing wave follows once every planned wave started');
  for (const m of ['m2', 'm3', 'm4', 'm5', 'm6']) d.converge(m);
  assert.is(d.r.phase, 'completed');
});

it('a device joining the swarm after the start is staged in the trailing wave, even once completed', () => {
  const d = start({ waves: parseQuotas('100%', 'w') }, ids.slice(0, 2));
  for (const m of ['m1', 'm2']) d.converge(m);
  assert.is(d.r.phase, 'completed');
  d.on({ kind: 'join', member: 'm3' });
  assert.is(d.r.phase, 'running');
  assert.is(d.state('m3'), 'staging');
  assert.not.ok(barrier(d.r, (m) => d.fresh.has(m)).holds, 'the barrier waits for it under all');
  d.converge('m3');
  assert.is(d.r.phase, 'completed');
  d.on({ kind: 'join', member: 'm3' });
  assert.equal(d.sent('m3', 'stage').length, 1, 'a member joins once');
});

it('operation outcomes are recorded per member; the operation is done when all reported', () => {
  const d = start({ waves: parseQuotas('100%', 'w') }, ['m1', 'm2']);
  for (const m of ['m1', 'm2']) d.converge(m);
  d.operate('recipe', d.now + 1000);
  const op = d.r.operations[0]!;
  d.on({ kind: 'report', member: 'm1', command: op.told.m1!, state: 'done' });
  assert.is(d.r.operations[0]!.state, 'released');
  d.now += 1000 + 60_000;
  d.on({ kind: 'tick' });
  const after = d.r.operations[0]!;
  assert.equal(after.results.m1, { state: 'done' });
  assert.equal(after.results.m2, {
    state: 'failed',
    code: 'timed-out',
    detail: 'no report on the operation by its deadline',
  });
  assert.is(after.state, 'done');
});

it('an operation is refused when the members signed for are not the barrier any more', () => {
  const d = start({ waves: parseQuotas('100%', 'w') }, ['m1', 'm2']);
  for (const m of ['m1', 'm2']) d.converge(m);
  d.on({ kind: 'operate', name: 'x', at: d.now, exp: d.now + 1, args: 'a0', token: 'ff', members: ['m1'] });
  assert.match(d.refused!, /barrier changed/);
  assert.equal(d.r.operations, []);
});

it.run();
