import { signal } from '@preact/signals';
import type { GatewayEvent } from '../../../events.ts';
import type { BatchDeviceResult, BatchProgress } from '../../../rounds/batches.ts';
import { api, errorText } from '../api.ts';

// On-demand batches this tab watches. Progress starts from the gateway's answer (POST or GET
// v1/batches) and moves with the live stream: each settled round patches its row and the counts
// are recounted here, so a 10,000-device batch costs no polling. The gateway's own progress is
// fetched again when the rows say the batch is done, at its deadline (a round abandoned by a
// closed connection settles without an event), and after a resync.

export interface Watched {
  readonly progress: BatchProgress;
  readonly error: string | null;
}

export const watched = signal<readonly Watched[]>([]);

const KEY = 'vigil.batches';
const KEEP = 10;
const timers = new Map<string, ReturnType<typeof setTimeout>>();

function remembered(): string[] {
  try {
    const ids = JSON.parse(sessionStorage.getItem(KEY) ?? '[]') as unknown;
    return Array.isArray(ids) ? ids.filter((x): x is string => typeof x === 'string') : [];
  } catch {
    return [];
  }
}

function put(w: Watched): void {
  const rest = watched.peek().filter((x) => x.progress.id !== w.progress.id);
  const exists = rest.length < watched.peek().length;
  const list = exists
    ? watched.peek().map((x) => (x.progress.id === w.progress.id ? w : x))
    : [w, ...rest].slice(0, KEEP);
  watched.value = list;
  sessionStorage.setItem(KEY, JSON.stringify(list.map((x) => x.progress.id)));
  schedule(w.progress);
}

/** Refetches a batch that is not done yet just after its deadline. */
function schedule(p: BatchProgress): void {
  const old = timers.get(p.id);
  if (old) clearTimeout(old);
  timers.delete(p.id);
  if (p.done) return;
  timers.set(
    p.id,
    setTimeout(() => void loadBatch(p.id), Math.max(0, p.deadlineAt - Date.now()) + 500),
  );
}

export function watchBatch(p: BatchProgress): void {
  put({ progress: p, error: null });
}

export async function loadBatch(id: string): Promise<void> {
  try {
    watchBatch(await api<BatchProgress>('GET', `v1/batches/${encodeURIComponent(id)}`));
  } catch (e) {
    const w = watched.peek().find((x) => x.progress.id === id);
    if (w) put({ ...w, error: errorText(e) });
    else throw e;
  }
}

/** Loads the batches this tab watched before a reload, and `id` if given. */
export async function restoreWatched(id?: string): Promise<void> {
  const have = new Set(watched.peek().map((w) => w.progress.id));
  const ids = [...remembered().reverse(), ...(id ? [id] : [])].filter((x) => !have.has(x));
  for (const x of new Set(ids)) await loadBatch(x).catch(() => {});
}

export function reloadWatched(): void {
  for (const w of watched.peek()) if (!w.progress.done) void loadBatch(w.progress.id);
}

export function applyBatchEvent(e: GatewayEvent): void {
  if (e.kind === 'batch') {
    if (watched.peek().some((w) => w.progress.id === e.batch) && e.done) void loadBatch(e.batch);
    return;
  }
  if (e.kind !== 'round' || e.round.state === 'pending') return;
  for (const w of watched.peek()) {
    const i = w.progress.results.findIndex((r) => r.round === e.round.id);
    if (i < 0) continue;
    const results = w.progress.results.slice();
    results[i] = {
      ...results[i]!,
      state: e.round.state,
      status: e.round.status,
      codes: e.round.codes,
      detail: e.round.detail,
    };
    const progress = recount(w.progress, results, e.round.appraisedAt ?? Date.now());
    put({ ...w, progress });
    if (progress.done) void loadBatch(progress.id);
  }
}

/** The counts of BatchProgress from its rows (as the gateway counts them). */
export function recount(p: BatchProgress, results: readonly BatchDeviceResult[], at: number): BatchProgress {
  const appraised = { affirming: 0, warning: 0, contraindicated: 0, none: 0 };
  const n = { stale: 0, abandoned: 0, pending: 0, unreachable: 0 };
  for (const r of results) {
    if (r.state === 'appraised') appraised[r.status ?? 'none']++;
    else n[r.state]++;
  }
  const done = n.pending === 0;
  return {
    ...p,
    ...n,
    results,
    appraised,
    answered: appraised.affirming + appraised.warning + appraised.contraindicated + appraised.none,
    done,
    completedAt: done ? (p.completedAt ?? at) : null,
  };
}
