import { batch, signal } from '@preact/signals';
import type { DeviceView } from '../../../api/views.ts';
import type { GatewayEvent } from '../../../events.ts';
import type { Posture } from '../../../model.ts';
import type { FleetPage } from '../../fleet-query.ts';
import { api, errorText } from '../api.ts';

// The fleet table's data: the gateway filters and sorts (GET v1/fleet), the page loads only the
// pages of rows on screen, and live events patch the rows it has. A posture change may move a
// device in or out of the filtered rows and changes the counts: the pages on screen are reloaded
// a moment later, once per burst of changes, not once per change.

export const PAGE = 50;
const REFRESH_MS = 1000;

export interface FleetFilter {
  readonly posture: Posture | null;
  readonly label: string | null;
  /** Part of a device id. */
  readonly q: string;
}

export type FleetSummary = Omit<FleetPage, 'devices' | 'offset'>;

export const filter = signal<FleetFilter>({ posture: null, label: null, q: '' });
export const summary = signal<FleetSummary | null>(null);
/** Loaded rows, by page number. */
export const pages = signal<ReadonlyMap<number, readonly DeviceView[]>>(new Map());
export const fleetError = signal<string | null>(null);

/** Bumped whenever loaded rows become meaningless (new filter): late answers are dropped. */
let generation = 0;
const loading = new Set<number>();
let onScreen = { first: 0, last: 0 };
let refreshTimer: ReturnType<typeof setTimeout> | undefined;

function query(f: FleetFilter, offset: number): string {
  const p = new URLSearchParams({ offset: String(offset), limit: String(PAGE) });
  if (f.posture) p.set('posture', f.posture);
  if (f.label) p.set('label', f.label);
  if (f.q) p.set('q', f.q);
  return p.toString();
}

async function loadPage(n: number): Promise<void> {
  if (loading.has(n)) return;
  loading.add(n);
  const gen = generation;
  try {
    const {
      devices,
      offset: _offset,
      ...rest
    } = await api<FleetPage>('GET', `v1/fleet?${query(filter.peek(), n * PAGE)}`);
    if (gen !== generation) return;
    batch(() => {
      summary.value = rest;
      pages.value = new Map(pages.peek()).set(n, devices);
      fleetError.value = null;
    });
  } catch (e) {
    if (gen === generation) fleetError.value = errorText(e);
  } finally {
    if (gen === generation) loading.delete(n);
  }
}

const pagesOf = (first: number, last: number) => ({
  from: Math.floor(Math.max(0, first) / PAGE),
  to: Math.floor(Math.max(0, last) / PAGE),
});

/** Rows `first` to `last` are on screen: loads the pages they are on. */
export function showRows(first: number, last: number): void {
  onScreen = { first, last };
  const { from, to } = pagesOf(first, last);
  for (let n = from; n <= to; n++) if (!pages.peek().has(n)) void loadPage(n);
}

export function setFilter(change: Partial<FleetFilter>): void {
  generation++;
  loading.clear();
  batch(() => {
    filter.value = { ...filter.peek(), ...change };
    pages.value = new Map();
  });
  showRows(0, onScreen.last - onScreen.first);
}

/** Reloads the pages on screen (keeping their rows shown until then) and forgets the others. */
export function refresh(): void {
  if (refreshTimer) clearTimeout(refreshTimer);
  refreshTimer = undefined;
  generation++;
  loading.clear();
  const { from, to } = pagesOf(onScreen.first, onScreen.last);
  pages.value = new Map([...pages.peek()].filter(([n]) => n >= from && n <= to));
  for (let n = from; n <= to; n++) void loadPage(n);
}

function refreshSoon(): void {
  refreshTimer ??= setTimeout(refresh, REFRESH_MS);
}

function patchRow(id: string, patch: (d: DeviceView) => DeviceView): void {
  for (const [n, rows] of pages.peek()) {
    const i = rows.findIndex((d) => d.id === id);
    if (i < 0) continue;
    const next = rows.slice();
    next[i] = patch(rows[i]!);
    pages.value = new Map(pages.peek()).set(n, next);
    return;
  }
}

export function applyFleetEvent(e: GatewayEvent): void {
  if (e.kind === 'posture') {
    const n = e.notice;
    patchRow(n.id, (d) => ({
      ...d,
      posture: n.posture,
      reasons: n.reasons,
      expires: n.expires,
      labels: n.labels,
    }));
    refreshSoon();
  } else if (e.kind === 'round') {
    const r = e.round;
    patchRow(e.device, (d) =>
      d.lastRound && d.lastRound.issuedAt > r.issuedAt ? d : { ...d, lastRound: r },
    );
  }
}
