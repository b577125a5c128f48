import { useSignal } from '@preact/signals';
import type { OperatorAction } from '../../../rollouts/requests.ts';
import type { RolloutView } from '../../../rollouts/view.ts';
import { api, errorText } from '../api.ts';
import { now } from '../clock.ts';
import { ago, dateTime, span } from '../format.ts';
import { href } from '../route.ts';
import { canOperate } from '../session.ts';
import { ConfirmButton } from '../ui/confirm-button.tsx';
import { StateBadge } from '../ui/state-badge.tsx';
import { actionsFor, operateBlocked } from './actions.ts';
import { BarrierCard } from './barrier-card.tsx';
import { DigestsCard } from './digests-card.tsx';
import { MemberCounts } from './member-counts.tsx';
import { OperateForm } from './operate-form.tsx';
import { OperationsCard } from './operations-card.tsx';
import { useRolloutView } from './rollout-watch.ts';
import { phaseTone } from './tones.ts';
import { WavesCard } from './waves-card.tsx';

// One rollout, live: what it rolls where and how, the barrier, the members by the digest their
// quotes show, the waves with every member, the operations; and for operators the actions its
// phase allows and the operation form.

export function RolloutPage({ id }: { id: string }) {
  const { view: v, error, show } = useRolloutView(id);
  if (!v)
    return (
      <main class="page">
        <p class="muted">
          <a href={href({ page: 'rollouts' })}>Rollouts</a>
        </p>
        {error.value ? <p class="error">{error.value}</p> : <p class="muted">loading…</p>}
      </main>
    );
  const operator = canOperate.value;
  return (
    <main class="page rollout-page" data-rollout={v.id} data-phase={v.phase}>
      <p class="muted crumbs">
        <a href={href({ page: 'rollouts' })}>Rollouts</a> /
      </p>
      <header class="page-head">
        <h1 class="mono rollout-id">{v.id}</h1>
        <StateBadge state={v.phase} tone={phaseTone(v.phase)} />
        <MemberCounts counts={v.members} />
        {v.why && <span class="muted wrap">{v.why}</span>}
      </header>
      {error.value && <p class="error">{error.value}</p>}
      {operator && <Actions rollout={v} onDone={show} />}
      <div class="rollout-grid">
        <Facts rollout={v} />
        <BarrierCard rollout={v} />
      </div>
      <DigestsCard rollout={v} />
      <WavesCard waves={v.waves} />
      <OperationsCard operations={v.operationsDetail}>
        {operator && <OperateForm rollout={v.id} blocked={operateBlocked(v)} />}
      </OperationsCard>
    </main>
  );
}

function Facts({ rollout: v }: { rollout: RolloutView }) {
  const s = v.spec;
  const t = now.value;
  return (
    <section class="card facts" aria-labelledby="facts-h">
      <h2 id="facts-h">What and how</h2>
      <dl>
        <dt>release</dt>
        <dd class="wrap">
          <span class="sw-name">{v.release.name}</span> {v.release.version}{' '}
          <span class="muted">(seq {v.release.seq})</span>{' '}
          <span class="mono muted" title={v.release.digest}>
            {v.release.digest.slice(0, 16)}…
          </span>
        </dd>
        <dt>swarm</dt>
        <dd class="wrap">{v.swarm}</dd>
        <dt>started</dt>
        <dd>{dateTime(v.createdAt)}</dd>
        <dt>updated</dt>
        <dd>{ago(v.updatedAt, t)}</dd>
        <dt>waves</dt>
        <dd>
          {s.waves.join(', ')}, each to {s.successPercent}% converged before the next
        </dd>
        <dt>abort</dt>
        <dd>
          beyond {s.abort.percent}% failed, once {s.abort.min} finished
        </dd>
        <dt>timeouts</dt>
        <dd>
          stage {span(s.timeouts.stageMs)}, activate {span(s.timeouts.activateMs)}, command{' '}
          {span(s.timeouts.commandMs)}
        </dd>
        <dt>in flight</dt>
        <dd>
          {v.inflight} command{v.inflight === 1 ? '' : 's'}
        </dd>
      </dl>
    </section>
  );
}

function Actions({ rollout: v, onDone }: { rollout: RolloutView; onDone: (v: RolloutView) => void }) {
  const error = useSignal<string | null>(null);
  const busy = useSignal(false);
  const actions = actionsFor(v.phase);
  if (actions.length === 0) return null;
  const act = async (action: OperatorAction) => {
    busy.value = true;
    error.value = null;
    try {
      const { rollout } = await api<{ rollout: RolloutView }>(
        'POST',
        `v1/rollouts/${encodeURIComponent(v.id)}/${action}`,
      );
      onDone(rollout);
    } catch (e) {
      error.value = errorText(e);
    } finally {
      busy.value = false;
    }
  };
  return (
    <fieldset class="card actions">
      <legend class="sr-only">Rollout actions</legend>
      {actions.map((a) =>
        a.confirm ? (
          <ConfirmButton
            key={a.action}
            label={a.label}
            confirm={a.confirm}
            disabled={busy.value}
            onConfirm={() => void act(a.action)}
          />
        ) : (
          <button
            key={a.action}
            type="button"
            class="secondary"
            disabled={busy.value}
            onClick={() => void act(a.action)}
          >
            {a.label}
          </button>
        ),
      )}
      {error.value && (
        <p class="error" role="alert">
          {error.value}
        </p>
      )}
    </fieldset>
  );
}
