import type { RolloutView } from '../../../rollouts/view.ts';
import { href } from '../route.ts';
import { StateBadge } from '../ui/state-badge.tsx';

// The barrier: whether enough members (and every required one) are converged on the release and
// fresh now, and who is missing. It is judged live: a converged member whose posture lapsed or
// whose last quote shows another digest no longer counts.

export function BarrierCard({ rollout: v }: { rollout: RolloutView }) {
  const b = v.barrierDetail;
  const required = new Set(v.spec.required);
  return (
    <section class="card barrier" aria-labelledby="barrier-h" data-holds={b.holds}>
      <h2 id="barrier-h">Barrier</h2>
      <p class="barrier-line">
        <StateBadge state={b.holds ? 'holds' : 'does not hold'} tone={b.holds ? 'good' : 'idle'} />{' '}
        <span data-count="converged">{b.good.length}</span> converged and fresh of{' '}
        {b.good.length + b.missing.length}, <span data-count="needed">{b.needed}</span> needed{' '}
        <span class="muted">
          (barrier {v.spec.barrier}
          {v.spec.required.length > 0 && `, ${v.spec.required.length} required`})
        </span>
      </p>
      {b.missing.length > 0 && (
        <>
          <h3>Missing ({b.missing.length})</h3>
          <ul class="id-list missing">
            {b.missing.map((id) => (
              <li key={id} data-member={id}>
                <a class="mono" href={href({ page: 'device', id })}>
                  {id}
                </a>
                {required.has(id) && <span class="muted"> required</span>}
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}
