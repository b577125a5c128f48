import { signal } from '@preact/signals';
import type { GatewayEvent } from '../../../events.ts';
import type { RolloutNotice } from '../../../rollouts/view.ts';
import { api, errorText } from '../api.ts';

// Every rollout the gateway keeps, newest started first: loaded from GET v1/rollouts and kept
// current by the `rollout` events, each of which carries the whole notice a row shows.

export const rollouts = signal<readonly RolloutNotice[] | null>(null);
export const listError = signal<string | null>(null);

const newestFirst = (a: RolloutNotice, b: RolloutNotice) =>
  b.createdAt - a.createdAt || (a.id < b.id ? -1 : 1);

export async function loadRollouts(): Promise<void> {
  try {
    const { rollouts: list } = await api<{ rollouts: RolloutNotice[] }>('GET', 'v1/rollouts');
    rollouts.value = [...list].sort(newestFirst);
    listError.value = null;
  } catch (e) {
    listError.value = errorText(e);
  }
}

/** A notice replaces the row of its rollout (unless it is older), or adds it. */
export function putNotice(n: RolloutNotice): void {
  const list = rollouts.peek();
  if (list === null) return;
  const old = list.find((r) => r.id === n.id);
  if (old && old.updatedAt > n.updatedAt) return;
  rollouts.value = [...list.filter((r) => r.id !== n.id), n].sort(newestFirst);
}

export function applyRolloutEvent(e: GatewayEvent): void {
  if (e.kind === 'rollout') putNotice(e.notice);
}
