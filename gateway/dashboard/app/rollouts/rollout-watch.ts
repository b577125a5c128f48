import { type Signal, useSignal } from '@preact/signals';
import { useEffect } from 'preact/hooks';
import type { RolloutView } from '../../../rollouts/view.ts';
import { api, errorText } from '../api.ts';
import { liveLoad } from '../live.ts';

// One rollout's full view (GET v1/rollouts/ID), fetched again shortly after a `rollout` event for
// it or a posture change of one of its members (a member no longer fresh breaks the barrier
// without changing the rollout), at most every RELOAD_MS however many events arrive. Answers that
// arrive out of order never replace a newer one.

const RELOAD_MS = 300;

/** The last view of each rollout this tab saw (a start's answer): shown while the page loads. */
const known = new Map<string, RolloutView>();

export function remember(v: RolloutView): void {
  known.set(v.id, v);
}

export interface Watched {
  /** The view of the rollout asked for, never one of the rollout shown before it. */
  readonly view: RolloutView | null;
  readonly error: Signal<string | null>;
  /** Shows an answer the page got itself (an action's), unless a newer one is shown. */
  readonly show: (v: RolloutView) => void;
}

export function useRolloutView(id: string): Watched {
  const view = useSignal<RolloutView | null>(known.get(id) ?? null);
  const error = useSignal<string | null>(null);
  const show = (v: RolloutView) => {
    const shown = view.peek();
    if (v.id !== id || (shown && shown.id === id && shown.updatedAt > v.updatedAt)) return;
    remember(v);
    view.value = v;
    error.value = null;
  };
  useEffect(() => {
    view.value = known.get(id) ?? null;
    error.value = null;
    return liveLoad({
      fetch: () => api<{ rollout: RolloutView }>('GET', `v1/rollouts/${encodeURIComponent(id)}`),
      apply: ({ rollout }) => show(rollout),
      failed: (e) => {
        error.value = errorText(e);
      },
      matters: (e) =>
        (e.kind === 'rollout' && e.notice.id === id) ||
        (e.kind === 'posture' && isMember(view.peek(), e.notice.id)),
      delayMs: RELOAD_MS,
    });
  }, [id]);
  // Until the effect above has run, the signal still holds the previous rollout's view.
  const shown = view.value;
  return { view: shown?.id === id ? shown : null, error, show };
}

function isMember(v: RolloutView | null, device: string): boolean {
  return v?.waves.some((w) => w.members.some((m) => m.id === device)) ?? false;
}
