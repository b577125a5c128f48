import { useSignal } from '@preact/signals';
import { useEffect } from 'preact/hooks';
import type { BatchProgress } from '../../../rounds/batches.ts';
import type { FleetPage } from '../../fleet-query.ts';
import { ActivityChart } from '../activity-chart.tsx';
import { api, errorText } from '../api.ts';
import { onEvent, onResync } from '../live.ts';
import { go } from '../route.ts';
import { canOperate } from '../session.ts';
import { TextField } from '../ui/text-field.tsx';
import { BatchCard } from './batch-card.tsx';
import { applyBatchEvent, reloadWatched, restoreWatched, watchBatch, watched } from './batch-watch.ts';

// On-demand rounds: start one for the fleet, a label or a device (operators), and watch each
// batch this tab started or opened settle, live.

export function RoundsPage({ batch }: { batch?: string | undefined }) {
  useEffect(() => {
    void restoreWatched(batch);
    const off = [onEvent(applyBatchEvent), onResync(reloadWatched)];
    return () => {
      for (const f of off) f();
    };
  }, [batch]);
  const list = watched.value;
  return (
    <main class="page rounds-page">
      <header class="page-head">
        <h1>On-demand rounds</h1>
      </header>
      {canOperate.value ? (
        <StartForm />
      ) : (
        <p class="card muted viewer-note">Signed in as a viewer: you can watch rounds, not start them.</p>
      )}
      {list.length === 0 ? (
        <p class="muted">No batch watched in this tab yet.</p>
      ) : (
        list.map((w) => <BatchCard key={w.progress.id} watched={w} focus={w.progress.id === batch} />)
      )}
      <section class="card chart-card">
        <h2>Rounds per minute</h2>
        <ActivityChart />
      </section>
    </main>
  );
}

type Target = 'all' | 'label' | 'device';

function StartForm() {
  const target = useSignal<Target>('all');
  const label = useSignal('');
  const device = useSignal('');
  const labels = useSignal<readonly string[]>([]);
  const error = useSignal<string | null>(null);
  const busy = useSignal(false);
  useEffect(() => {
    api<FleetPage>('GET', 'v1/fleet?limit=1').then(
      (p) => {
        labels.value = p.labels.map((l) => l.label);
      },
      () => {},
    );
  }, []);
  const selector = (): object =>
    target.value === 'all'
      ? { all: true }
      : target.value === 'label'
        ? { label: label.value }
        : { ids: [device.value.trim().toLowerCase()] };
  const start = async (e: Event) => {
    e.preventDefault();
    busy.value = true;
    error.value = null;
    try {
      const p = await api<BatchProgress>('POST', 'v1/batches', selector());
      watchBatch(p);
      go({ page: 'rounds', batch: p.id });
    } catch (err) {
      error.value = errorText(err);
    } finally {
      busy.value = false;
    }
  };
  return (
    <form class="card start-form" onSubmit={start}>
      <h2>Attest now</h2>
      <fieldset>
        <legend class="sr-only">Which devices</legend>
        {(['all', 'label', 'device'] as const).map((t) => (
          <label key={t} class="radio">
            <input
              type="radio"
              name="target"
              value={t}
              checked={target.value === t}
              onChange={() => {
                target.value = t;
              }}
            />
            {t === 'all' ? 'the whole fleet' : t === 'label' ? 'devices with a label' : 'one device'}
          </label>
        ))}
      </fieldset>
      {target.value === 'label' && (
        <label class="field">
          <span>Label</span>
          <select
            value={label.value}
            required
            onChange={(e) => {
              label.value = e.currentTarget.value;
            }}
          >
            <option value="">choose…</option>
            {labels.value.map((l) => (
              <option key={l} value={l}>
                {l}
              </option>
            ))}
          </select>
        </label>
      )}
      {target.value === 'device' && (
        <TextField
          label="Device id"
          value={device}
          required
          pattern="[0-9a-fA-F]{24}"
          placeholder="24 hex digits"
        />
      )}
      <button type="submit" class="primary" disabled={busy.value}>
        Start round
      </button>
      {error.value && <p class="error">{error.value}</p>}
    </form>
  );
}
