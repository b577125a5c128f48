import type { RolloutNotice } from '../../../rollouts/view.ts';
import { MEMBER_STATES, memberTone } from './tones.ts';

/** Members per state, in the order members move through them. */
export function MemberCounts({ counts }: { counts: RolloutNotice['members'] }) {
  return (
    <span class="state-counts">
      {MEMBER_STATES.filter((s) => (counts[s] ?? 0) > 0).map((s) => (
        <span key={s} class={`state-count tone-${memberTone(s)}`} data-state={s}>
          {counts[s]} {s}
        </span>
      ))}
    </span>
  );
}
