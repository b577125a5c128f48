import type { DeviceDetailView } from '../api/views.ts';
import { client, parse, TARGET_OPTIONS, UsageError } from './args.ts';
import { ago, json, labelsText, table } from './output.ts';

const iso = (t: number | null) => (t === null ? '-' : new Date(t).toISOString());

export async function show(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    ...TARGET_OPTIONS,
    json: { type: 'boolean' },
    rounds: { type: 'string' },
  });
  if (positionals.length !== 1) throw new UsageError('show takes one device id');
  const q = values.rounds === undefined ? '' : `?rounds=${encodeURIComponent(values.rounds)}`;
  const v = await client(values).request<DeviceDetailView>(
    'GET',
    `/v1/devices/${encodeURIComponent(positionals[0]!)}${q}`,
  );
  if (values.json) {
    process.stdout.write(json(v));
    return 0;
  }
  const d = v.device;
  const lines = [
    `device     ${d.id}`,
    `posture    ${d.posture}${d.reasons.length ? ` (${d.reasons.join(', ')})` : ''}`,
    `expires    ${iso(d.expires)}${d.expires === null ? '' : ` (${ago(d.expires)})`}`,
    `connected  ${d.connected ? `yes, ${d.connections} connection${d.connections === 1 ? '' : 's'}` : 'no'}`,
    `labels     ${labelsText(d.labels)}`,
    `EK hash    ${d.ekHash}`,
    `attester   ${d.attester}, agent ${d.agent}, AK ${d.enrolled ? 'enrolled' : 'not enrolled'}`,
    `seen       first ${iso(d.firstSeen)}, last ${iso(d.lastSeen)}`,
    `software   ${d.software.map((s) => `${s.name} ${s.version} (${s.digest.slice(0, 16)}…)`).join(', ') || '-'}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n\nRecent rounds\n`);
  process.stdout.write(
    table(
      ['ISSUED', 'ROUND', 'REASON', 'STATE', 'STATUS', 'CODES', 'DETAIL'],
      v.rounds.map((r) => [
        iso(r.issuedAt),
        r.id.slice(0, 12),
        r.reason,
        r.state,
        r.status ?? '-',
        r.codes.join(',') || '-',
        r.detail ?? '',
      ]),
    ),
  );
  if (v.mcus.length > 0) {
    const m0 = v.mcus[0]!;
    process.stdout.write(`\nMCUs (round ${m0.round.slice(0, 12)}, appraised ${iso(m0.appraisedAt)})\n`);
    process.stdout.write(
      table(
        ['SUBMODULE', 'STATUS', 'CODE', 'MODEL', 'FIRMWARE', 'IDENTITY', 'ON FAILURE', 'DETAIL'],
        v.mcus.map((m) => [
          m.submodule,
          m.status,
          m.code ?? '-',
          m.model ?? '-',
          m.firmware ? `${m.firmware.slice(0, 16)}…` : '-',
          m.identity ? `${m.identity.slice(0, 16)}…` : '-',
          m.onFailure,
          m.detail ?? '',
        ]),
      ),
    );
  }
  process.stdout.write('\nPosture events\n');
  process.stdout.write(
    table(
      ['AT', 'FROM', 'TO', 'REASONS', 'ROUND'],
      v.events.map((e) => [
        iso(e.at),
        e.from,
        e.to,
        e.reasons.join(',') || '-',
        e.round?.slice(0, 12) ?? '-',
      ]),
    ),
  );
  return 0;
}
