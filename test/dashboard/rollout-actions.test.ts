import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  ACTIONS,
  actionsFor,
  OPERATE_PHASES,
  operateBlocked,
} from '../../gateway/dashboard/app/rollouts/actions.ts';
import { createRollout, type StepContext, step } from '../../gateway/rollouts/machine.ts';
import type { RolloutPhase, RolloutSpec } from '../../gateway/rollouts/model.ts';
import { parseQuotas } from '../../gateway/rollouts/quota.ts';

// The dashboard offers an action only in the phases where the gateway's state machine takes it,
// and the operation form only where the machine would judge the barrier: the page's table is
// held here to gateway/rollouts/machine.ts, phase by phase.

const it = suite('rollout actions the dashboard offers');

const PHASES: readonly RolloutPhase[] = [
  'running',
  'paused',
  'aborted',
  'cancelled',
  'completed',
  'rolling-back',
  'rolled-back',
  'committed',
];

const SPEC: RolloutSpec = {
  id: 'r-000000000001',
  swarm: 'line=a',
  release: { name: 'app', version: '2.0.0', seq: 2, digest: 'ab'.repeat(32) },
  waves: parseQuotas('1,100%', 'waves'),
  successPercent: 100,
  abort: { percent: 20, min: 1 },
  barrier: { kind: 'all' },
  required: [],
  timeouts: { stageMs: 60_000, activateMs: 60_000, commandMs: 60_000 },
  createdAt: 0,
};

let n = 0;
const ctx: StepContext = { now: 1000, newId: () => `c${++n}`, fresh: () => true };
const inPhase = (phase: RolloutPhase) => ({ ...createRollout(SPEC, ['m1', 'm2'], 0), phase });

it('each action is offered exactly in the phases the machine takes it', () => {
  for (const phase of PHASES)
    for (const { action } of ACTIONS) {
      const refused = step(inPhase(phase), { kind: action }, ctx).refused;
      const offered = actionsFor(phase).some((a) => a.action === action);
      assert.is(
        offered,
        refused === undefined,
        `${action} in ${phase}: the machine says ${refused ?? 'yes'}`,
      );
    }
});

it('the operation form is blocked by the phase exactly where the machine refuses for the phase', () => {
  for (const phase of PHASES) {
    const refused = step(
      inPhase(phase),
      { kind: 'operate', name: 'recipe', at: 1000, exp: 61_000, args: 'a0', token: '', members: [] },
      ctx,
    ).refused;
    // No member converged: where the phase allows it, the barrier is what the machine refuses.
    assert.ok(refused !== undefined, phase);
    assert.is(
      refused.startsWith('the barrier'),
      OPERATE_PHASES.includes(phase),
      `${phase}: the machine says ${refused}`,
    );
    const blocked = operateBlocked({
      phase,
      spec: { required: [] },
      barrierDetail: { holds: false, needed: 2, good: [], missing: ['m1', 'm2'] },
    });
    assert.is(blocked?.startsWith('the barrier'), OPERATE_PHASES.includes(phase), `${phase}: ${blocked}`);
  }
});

it('the form says why the barrier blocks it, and nothing once it holds', () => {
  const view = (holds: boolean, good: string[], required: string[] = []) => ({
    phase: 'completed' as const,
    spec: { required },
    barrierDetail: { holds, needed: 3, good, missing: ['m1', 'm2', 'm3'].filter((m) => !good.includes(m)) },
  });
  assert.is(operateBlocked(view(true, ['m1', 'm2', 'm3'])), null);
  assert.is(
    operateBlocked(view(false, ['m1'])),
    'the barrier does not hold: 1 converged and fresh, 3 needed',
  );
  assert.is(
    operateBlocked(view(false, ['m1', 'm2', 'm3'], ['m4'])),
    'the barrier does not hold: 3 converged and fresh, 3 needed, and 1 required member(s) not converged',
  );
});

it.run();
