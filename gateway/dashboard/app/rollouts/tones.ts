import type { MemberState, RolloutPhase } from '../../../rollouts/model.ts';
import type { Tone } from '../ui/state-badge.tsx';

// The tone of a rollout's phase, a member's state and an operation's outcome, so that the same
// meaning reads the same everywhere on the page.

const PHASE: Record<RolloutPhase, Tone> = {
  running: 'busy',
  paused: 'warn',
  aborted: 'bad',
  cancelled: 'idle',
  completed: 'good',
  'rolling-back': 'warn',
  'rolled-back': 'idle',
  committed: 'good',
};

const MEMBER: Record<MemberState, Tone> = {
  waiting: 'idle',
  staging: 'busy',
  staged: 'busy',
  activating: 'busy',
  verifying: 'busy',
  converged: 'good',
  committed: 'good',
  failed: 'bad',
  'rolled-back': 'warn',
  absent: 'away',
};

/** Member states in the order a member moves through them, for counts. */
export const MEMBER_STATES = Object.keys(MEMBER) as MemberState[];

export const phaseTone = (p: RolloutPhase): Tone => PHASE[p];
export const memberTone = (s: MemberState): Tone => MEMBER[s];

/** An operation (released, done, cancelled) or a member's result on it (done, failed, ...). */
export function outcomeTone(state: string): Tone {
  if (state === 'done') return 'good';
  if (state === 'cancelled') return 'warn';
  if (state === 'failed' || state === 'timed-out') return 'bad';
  return 'busy';
}
