import type { RolloutPhase } from '../../../rollouts/model.ts';
import type { OperatorAction } from '../../../rollouts/requests.ts';
import type { RolloutView } from '../../../rollouts/view.ts';

// What an operator may do to a rollout in each phase, so that the page offers only the actions
// the gateway would take (gateway/rollouts/machine.ts decides; test/dashboard/rollout-actions.test.ts
// holds this table to it). The gateway refuses the others anyway, with the reason.

export interface ActionSpec {
  readonly action: OperatorAction;
  readonly label: string;
  readonly phases: readonly RolloutPhase[];
  /** Asked to confirm, with what it does: what cannot be taken back, or stops the rollout for good. */
  readonly confirm?: string;
}

/** Phases in which an operation may be released (and the barrier is what decides). */
export const OPERATE_PHASES: readonly RolloutPhase[] = ['running', 'paused', 'completed'];

export const ACTIONS: readonly ActionSpec[] = [
  { action: 'pause', label: 'Pause', phases: ['running'] },
  { action: 'resume', label: 'Resume', phases: ['paused'] },
  {
    action: 'commit',
    label: 'Commit',
    phases: ['completed'],
    confirm:
      'Commit: every converged member drops its previous tree and raises its floor to this seq; the swarm cannot go back to it without force.',
  },
  {
    action: 'rollback',
    label: 'Roll back',
    phases: [...OPERATE_PHASES, 'aborted'],
    confirm:
      'Roll back: every member told to activate switches back to its previous tree; stagings under way are called off.',
  },
  {
    action: 'cancel',
    label: 'Cancel',
    phases: [...OPERATE_PHASES, 'aborted'],
    confirm:
      'Cancel: the rollout stops for good; stagings under way are called off, activated members keep what they run.',
  },
];

export function actionsFor(phase: RolloutPhase): readonly ActionSpec[] {
  return ACTIONS.filter((a) => a.phases.includes(phase));
}

/** Why an operation cannot be released now, or null when it can (the gateway checks again). */
export function operateBlocked(v: {
  readonly phase: RolloutPhase;
  readonly spec: Pick<RolloutView['spec'], 'required'>;
  readonly barrierDetail: RolloutView['barrierDetail'];
}): string | null {
  if (!OPERATE_PHASES.includes(v.phase)) return `the rollout is ${v.phase}`;
  const b = v.barrierDetail;
  if (b.holds) return null;
  const required = v.spec.required.filter((id) => !b.good.includes(id));
  return (
    `the barrier does not hold: ${b.good.length} converged and fresh, ${b.needed} needed` +
    (required.length > 0 ? `, and ${required.length} required member(s) not converged` : '')
  );
}
