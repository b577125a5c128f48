import { useSignal } from '@preact/signals';
import { useEffect } from 'preact/hooks';
import type { Posture } from '../../../model.ts';
import { ActivityChart } from '../activity-chart.tsx';
import { onEvent, onResync } from '../live.ts';
import { POSTURE_ORDER } from '../ui/posture-badge.tsx';
import { TextField } from '../ui/text-field.tsx';
import { applyFleetEvent, filter, fleetError, refresh, setFilter, summary } from './fleet-data.ts';
import { FleetTable } from './fleet-table.tsx';

export function FleetPage() {
  useEffect(() => {
    const off = [onEvent(applyFleetEvent), onResync(refresh)];
    refresh();
    return () => {
      for (const f of off) f();
    };
  }, []);
  const s = summary.value;
  return (
    <main class="page fleet-page">
      <header class="page-head">
        <h1>Fleet</h1>
        <p class="muted">{s ? `${s.total} device${s.total === 1 ? '' : 's'} known` : 'loading…'}</p>
      </header>
      <PostureFilter />
      <section class="card table-card">
        <Toolbar />
        {fleetError.value && <p class="error">{fleetError.value}</p>}
        {s && s.matched === 0 ? <p class="empty">No device matches.</p> : <FleetTable />}
        {s && (
          <p class="muted table-foot">
            {s.matched} of {s.total} shown
          </p>
        )}
      </section>
      <section class="card chart-card">
        <h2>Rounds per minute</h2>
        <ActivityChart />
      </section>
    </main>
  );
}

/** Posture counts that are also the posture filter. */
function PostureFilter() {
  const s = summary.value;
  const current = filter.value.posture;
  const all = s ? Object.values(s.counts).reduce((a, b) => a + b, 0) : 0;
  const choose = (p: Posture | null) => setFilter({ posture: p });
  return (
    <nav class="posture-counts" aria-label="Filter by posture">
      <button
        type="button"
        class={current === null ? 'count selected' : 'count'}
        onClick={() => choose(null)}
      >
        <span class="count-n">{all}</span>
        <span class="count-name">all</span>
      </button>
      {POSTURE_ORDER.map((p) => (
        <button
          type="button"
          key={p}
          class={`count posture-${p}${current === p ? ' selected' : ''}`}
          aria-pressed={current === p}
          data-posture={p}
          onClick={() => choose(current === p ? null : p)}
        >
          <span class="count-n">{s?.counts[p] ?? 0}</span>
          <span class="count-name">{p}</span>
        </button>
      ))}
    </nav>
  );
}

function Toolbar() {
  const s = summary.value;
  const q = useSignal(filter.value.q);
  const invalid = q.value !== '' && !/^[0-9a-fA-F]{1,24}$/.test(q.value.trim());
  return (
    <div class="toolbar">
      <TextField
        label="Search id"
        value={q}
        placeholder="part of a device id"
        invalid={invalid}
        onChange={(text) => {
          const v = text.trim().toLowerCase();
          if (v === '' || /^[0-9a-f]{1,24}$/.test(v)) setFilter({ q: v });
        }}
      />
      {invalid && <small class="error">ids are hex digits 0-9 a-f</small>}
      <label class="field">
        <span>Label</span>
        <select
          value={filter.value.label ?? ''}
          onChange={(e) => setFilter({ label: e.currentTarget.value || null })}
        >
          <option value="">any</option>
          {(s?.labels ?? []).map((l) => (
            <option key={l.label} value={l.label}>
              {l.label} ({l.count})
            </option>
          ))}
        </select>
      </label>
    </div>
  );
}
