import { useEffect } from 'preact/hooks';
import type { RolloutNotice } from '../../../rollouts/view.ts';
import { now } from '../clock.ts';
import { ago, dateTime } from '../format.ts';
import { onEvent, onResync } from '../live.ts';
import { href } from '../route.ts';
import { canOperate } from '../session.ts';
import { StateBadge } from '../ui/state-badge.tsx';
import { MemberCounts } from './member-counts.tsx';
import { applyRolloutEvent, listError, loadRollouts, rollouts } from './rollout-list.ts';
import { StartForm } from './start-form.tsx';
import { phaseTone } from './tones.ts';

// Rollouts: every swarm's move to a release, newest first, live; operators start one here.

export function RolloutsPage() {
  useEffect(() => {
    void loadRollouts();
    const off = [onEvent(applyRolloutEvent), onResync(() => void loadRollouts())];
    return () => {
      for (const f of off) f();
    };
  }, []);
  const list = rollouts.value;
  return (
    <main class="page rollouts-page">
      <header class="page-head">
        <h1>Rollouts</h1>
        <p class="muted">
          A swarm moves to an imported release in waves; an operation is released once every member's quote
          shows the release.
        </p>
      </header>
      {canOperate.value ? (
        <StartForm />
      ) : (
        <p class="card muted viewer-note">Signed in as a viewer: you can watch rollouts, not start them.</p>
      )}
      <section class="card">
        <h2>All rollouts</h2>
        {listError.value && <p class="error">{listError.value}</p>}
        {list === null ? (
          <p class="muted">loading…</p>
        ) : list.length === 0 ? (
          <p class="empty">No rollout yet.</p>
        ) : (
          <RolloutTable list={list} />
        )}
      </section>
    </main>
  );
}

function RolloutTable({ list }: { list: readonly RolloutNotice[] }) {
  const t = now.value;
  return (
    <div class="table-wrap">
      <table class="rollouts">
        <thead>
          <tr>
            <th>rollout</th>
            <th>swarm</th>
            <th>release</th>
            <th>phase</th>
            <th>members</th>
            <th>barrier</th>
            <th>updated</th>
          </tr>
        </thead>
        <tbody>
          {list.map((r) => (
            <tr key={r.id} data-rollout={r.id} data-phase={r.phase}>
              <td>
                <a class="mono" href={href({ page: 'rollouts', id: r.id })}>
                  {r.id}
                </a>
                <div class="muted small">started {dateTime(r.createdAt)}</div>
              </td>
              <td class="wrap">{r.swarm}</td>
              <td class="wrap">
                {r.release.name} {r.release.version} <span class="muted">(seq {r.release.seq})</span>
              </td>
              <td>
                <StateBadge state={r.phase} tone={phaseTone(r.phase)} />
                {r.why && <div class="muted small wrap">{r.why}</div>}
              </td>
              <td>
                <MemberCounts counts={r.members} />
              </td>
              <td data-barrier={r.barrier.holds ? 'holds' : 'not-held'}>
                {r.barrier.holds ? 'holds' : 'not held'}, {r.barrier.converged}/{r.barrier.needed}
              </td>
              <td>{ago(r.updatedAt, t)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
