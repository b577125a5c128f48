import { ApiError } from '../api/errors.ts';
import { parseLabel } from '../api/labels.ts';
import { intParam } from '../api/query.ts';
import type { DeviceView } from '../api/views.ts';
import { type DeviceRecord, POSTURES, type Posture } from '../model.ts';

// The fleet page's question, answered on the gateway so that a browser watching 10,000 devices
// loads one page of rows, not the fleet: devices filtered by posture, label and id, sorted by id,
// one slice of them, with the posture counts of the filtered scope (the posture filter aside, so
// the page can show what each posture choice would give) and the labels in use.

export interface FleetQuery {
  readonly posture?: Posture;
  readonly label?: readonly [string, string];
  /** Part of a device id (lowercase hex). */
  readonly q?: string;
  readonly offset: number;
  readonly limit: number;
}

export interface FleetSlice {
  /** Devices the gateway knows. */
  readonly total: number;
  /** Devices matching every filter: the rows there are. */
  readonly matched: number;
  /** By posture, among the devices matching the label and id filters. */
  readonly counts: Readonly<Record<Posture, number>>;
  /** `K=V` labels in use with their device counts, by label; at most MAX_LABELS of them. */
  readonly labels: readonly { readonly label: string; readonly count: number }[];
  readonly offset: number;
  readonly devices: readonly DeviceRecord[];
}

/** What GET /v1/fleet returns: a FleetSlice with the devices as the API shows them. */
export type FleetPage = Omit<FleetSlice, 'devices'> & { readonly devices: readonly DeviceView[] };

export const MAX_PAGE = 500;
const MAX_LABELS = 500;

export function parseFleetQuery(q: URLSearchParams): FleetQuery {
  const posture = q.get('posture') || undefined;
  if (posture !== undefined && !POSTURES.includes(posture as Posture))
    throw new ApiError(
      'bad-request',
      `posture ${JSON.stringify(posture)}: expected one of ${POSTURES.join(', ')}`,
    );
  const label = q.get('label') || undefined;
  const id = q.get('q')?.trim().toLowerCase() || undefined;
  if (id !== undefined && !/^[0-9a-f]{1,24}$/.test(id))
    throw new ApiError(
      'bad-request',
      `q ${JSON.stringify(id)}: search by part of a device id, 1 to 24 hex digits (0-9, a-f)`,
    );
  return {
    ...(posture !== undefined && { posture: posture as Posture }),
    ...(label !== undefined && { label: parseLabel(label, 'bad-selector') }),
    ...(id !== undefined && { q: id }),
    offset: intParam(q, 'offset', 0, Number.MAX_SAFE_INTEGER, 0),
    limit: intParam(q, 'limit', 1, MAX_PAGE, 100),
  };
}

export function sliceFleet(devices: Iterable<DeviceRecord>, query: FleetQuery): FleetSlice {
  const counts = Object.fromEntries(POSTURES.map((p) => [p, 0])) as Record<Posture, number>;
  const labels = new Map<string, number>();
  const matched: DeviceRecord[] = [];
  let total = 0;
  for (const d of devices) {
    total++;
    for (const [k, v] of Object.entries(d.labels)) {
      const l = `${k}=${v}`;
      labels.set(l, (labels.get(l) ?? 0) + 1);
    }
    if (query.label && d.labels[query.label[0]] !== query.label[1]) continue;
    if (query.q !== undefined && !d.id.includes(query.q)) continue;
    counts[d.posture]++;
    if (query.posture === undefined || d.posture === query.posture) matched.push(d);
  }
  matched.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return {
    total,
    matched: matched.length,
    counts,
    labels: [...labels]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .slice(0, MAX_LABELS)
      .map(([label, count]) => ({ label, count })),
    offset: query.offset,
    devices: matched.slice(query.offset, query.offset + query.limit),
  };
}
