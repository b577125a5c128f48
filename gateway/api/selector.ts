import { isDeviceId } from '../../shared/protocol/index.ts';
import type { DeviceRecord } from '../model.ts';
import { show } from '../policy/json-fields.ts';
import { ApiError } from './errors.ts';
import { parseLabel } from './labels.ts';

// Which devices an on-demand round is for: every device, those with a label, or a list of ids.
// Exactly one form per request, so that a request cannot mean two things.

export type Selector =
  | { readonly all: true }
  | { readonly label: string }
  | { readonly ids: readonly string[] };

const FORMS = '{"all": true}, {"label": "KEY=VALUE"} or {"ids": ["<device id>", ...]}';
const MAX_IDS = 100_000;

export function parseSelector(body: Record<string, unknown>): Selector {
  const keys = Object.keys(body);
  if (keys.length !== 1)
    throw new ApiError(
      'bad-selector',
      `a selector has exactly one field, got ${keys.length === 0 ? 'none' : keys.join(', ')}: send ${FORMS}`,
    );
  if ('all' in body) {
    if (body.all !== true) throw new ApiError('bad-selector', `"all" must be true, got ${show(body.all)}`);
    return { all: true };
  }
  if ('label' in body) {
    if (typeof body.label !== 'string')
      throw new ApiError('bad-selector', `"label" must be a string KEY=VALUE, got ${show(body.label)}`);
    parseLabel(body.label, 'bad-selector');
    return { label: body.label };
  }
  if ('ids' in body) {
    const ids = body.ids;
    if (!Array.isArray(ids) || ids.length === 0 || ids.length > MAX_IDS)
      throw new ApiError(
        'bad-selector',
        `"ids" must be a non-empty array of device ids (at most ${MAX_IDS})`,
      );
    for (const id of ids) {
      if (typeof id !== 'string' || !isDeviceId(id))
        throw new ApiError(
          'bad-selector',
          `"ids": ${show(id)} is not a device id (24 lowercase hex digits, as \`vigil-gateway devices\` lists them)`,
        );
    }
    return { ids: [...new Set(ids as string[])] };
  }
  throw new ApiError('bad-selector', `unknown selector field "${keys[0]}": send ${FORMS}`);
}

export function describeSelector(s: Selector): string {
  if ('all' in s) return 'all devices';
  if ('label' in s) return `label ${s.label}`;
  return s.ids.length === 1 ? `device ${s.ids[0]}` : `${s.ids.length} devices`;
}

/** The known devices a selector names; unknown ids and empty matches are errors that say so. */
export function selectDevices(
  s: Selector,
  fleet: { get(id: string): DeviceRecord | undefined; all(): Iterable<DeviceRecord> },
): string[] {
  if ('ids' in s) {
    const unknown = s.ids.filter((id) => !fleet.get(id));
    if (unknown.length > 0)
      throw new ApiError(
        'device-not-found',
        `unknown device${unknown.length > 1 ? 's' : ''} ${unknown.slice(0, 5).join(', ')}${unknown.length > 5 ? ', ...' : ''}: list devices with \`vigil-gateway devices\``,
      );
    return [...s.ids];
  }
  const match = 'all' in s ? () => true : labelMatcher(s.label);
  const ids = [...fleet.all()].filter(match).map((d) => d.id);
  if (ids.length === 0)
    throw new ApiError(
      'no-match',
      'all' in s
        ? 'the gateway knows no devices yet'
        : `no device has label ${s.label}: see the labels with \`vigil-gateway devices\``,
    );
  return ids;
}

export function labelMatcher(label: string): (d: DeviceRecord) => boolean {
  const [k, v] = parseLabel(label, 'bad-selector');
  return (d) => d.labels[k] === v;
}
