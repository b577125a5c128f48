import { useSignal } from '@preact/signals';
import { useEffect } from 'preact/hooks';
import type { ReleaseManifestView } from '../../../api/routes/releases.ts';
import type { RolloutView } from '../../../rollouts/view.ts';
import type { FleetPage } from '../../fleet-query.ts';
import { api, errorText } from '../api.ts';
import { go } from '../route.ts';
import { SelectField } from '../ui/select-field.tsx';
import { TextField } from '../ui/text-field.tsx';
import { putNotice } from './rollout-list.ts';
import { remember } from './rollout-watch.ts';

// Start a rollout: a swarm (a label in use), an imported release, and the options in the forms
// the API and `vigil-gateway rollout start` take (docs/rollouts.md §6), filled with the defaults.
// The gateway validates everything; its refusal is shown as it says it.

export function StartForm() {
  const swarm = useSignal('');
  const release = useSignal('');
  const waves = useSignal('1,100%');
  const success = useSignal('100%');
  const abort = useSignal('20%,min=1');
  const barrier = useSignal('all');
  const required = useSignal('');
  const timeouts = useSignal('');
  const force = useSignal(false);
  const labels = useSignal<FleetPage['labels']>([]);
  const releases = useSignal<readonly ReleaseManifestView[]>([]);
  const error = useSignal<string | null>(null);
  const busy = useSignal(false);
  useEffect(() => {
    api<FleetPage>('GET', 'v1/fleet?limit=1').then(
      (p) => {
        labels.value = p.labels;
      },
      (e) => {
        error.value = `labels in use: ${errorText(e)}`;
      },
    );
    api<{ manifests: ReleaseManifestView[] }>('GET', 'v1/releases/manifests').then(
      (r) => {
        releases.value = r.manifests;
      },
      (e) => {
        error.value = `imported releases: ${errorText(e)}`;
      },
    );
  }, []);
  const start = async (e: Event) => {
    e.preventDefault();
    busy.value = true;
    error.value = null;
    const optional = (key: string, v: string) => (v.trim() === '' ? {} : { [key]: v.trim() });
    try {
      const { rollout } = await api<{ rollout: RolloutView }>('POST', 'v1/rollouts', {
        swarm: swarm.value,
        release: release.value,
        waves: waves.value.trim(),
        success: success.value.trim(),
        abort: abort.value.trim(),
        barrier: barrier.value.trim(),
        ...optional('required', required.value),
        ...optional('timeouts', timeouts.value),
        ...(force.value && { force: true }),
      });
      remember(rollout);
      putNotice(rollout);
      go({ page: 'rollouts', id: rollout.id });
    } catch (err) {
      error.value = errorText(err);
    } finally {
      busy.value = false;
    }
  };
  return (
    <form class="card start-form rollout-form" onSubmit={start}>
      <h2>Start a rollout</h2>
      <div class="form-grid">
        <SelectField
          label="Swarm (a label)"
          name="swarm"
          value={swarm}
          required
          prompt="choose…"
          options={labels.value.map((l) => ({
            value: l.label,
            text: `${l.label} (${l.count} device${l.count === 1 ? '' : 's'})`,
          }))}
        />
        <SelectField
          label="Release"
          name="release"
          value={release}
          required
          prompt={releases.value.length === 0 ? 'none imported' : 'choose…'}
          options={releases.value.map((r) => ({
            value: `${r.name}@${r.version}`,
            text: `${r.name} ${r.version} (seq ${r.seq})`,
          }))}
        />
        <TextField label="Waves (cumulative)" value={waves} required placeholder="1,50%,100%" />
        <TextField label="Success per wave" value={success} required placeholder="100%" />
        <TextField label="Abort beyond" value={abort} required placeholder="20%,min=1" />
        <TextField label="Barrier" value={barrier} required placeholder="all, a count, or 80%" />
        <TextField label="Required members (optional)" value={required} placeholder="id,id" />
        <TextField
          label="Timeouts (optional)"
          value={timeouts}
          placeholder="stage=30m,activate=10m,command=10m"
        />
      </div>
      <label class="radio">
        <input
          type="checkbox"
          checked={force.value}
          onChange={(e) => {
            force.value = e.currentTarget.checked;
          }}
        />
        force: roll to a release at or below the swarm's committed floor, on purpose
      </label>
      <button type="submit" class="primary" disabled={busy.value}>
        Start rollout
      </button>
      {error.value && (
        <p class="error" role="alert">
          {error.value}
        </p>
      )}
    </form>
  );
}
