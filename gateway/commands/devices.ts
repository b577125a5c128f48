import type { DeviceView } from '../api/views.ts';
import { client, parse, TARGET_OPTIONS } from './args.ts';
import { ago, json, labelsText, table } from './output.ts';

export function lastRoundText(d: DeviceView): string {
  const r = d.lastRound;
  if (!r) return '-';
  const outcome = r.state === 'appraised' ? (r.codes[0] ?? r.status ?? '') : r.state;
  return `${r.reason} ${outcome} ${ago(r.appraisedAt ?? r.issuedAt)}`;
}

export async function devices(args: string[]): Promise<number> {
  const { values } = parse(
    args,
    { ...TARGET_OPTIONS, label: { type: 'string' }, json: { type: 'boolean' } },
    false,
  );
  const q = values.label === undefined ? '' : `?label=${encodeURIComponent(values.label)}`;
  const { devices } = await client(values).request<{ devices: DeviceView[] }>('GET', `/v1/devices${q}`);
  if (values.json) {
    process.stdout.write(json(devices));
    return 0;
  }
  if (devices.length === 0) {
    process.stdout.write(values.label ? `No device has label ${values.label}.\n` : 'No devices yet.\n');
    return 0;
  }
  process.stdout.write(
    table(
      ['DEVICE', 'POSTURE', 'CONNECTED', 'LABELS', 'LAST ROUND', 'REASONS'],
      devices.map((d) => [
        d.id,
        d.posture,
        d.connected ? 'yes' : 'no',
        labelsText(d.labels),
        lastRoundText(d),
        d.reasons.join(',') || '-',
      ]),
    ),
  );
  return 0;
}
