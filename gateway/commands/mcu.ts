import type { McuAdmissionView } from '../mcus/view.ts';
import { client, parse, TARGET_OPTIONS, UsageError } from './args.ts';
import { ago, json, table } from './output.ts';

// `vigil-gateway mcu admit|revoke|list`: the MCU allowlist (docs/protocol.md §8), by identity
// hash as `vigil-agent mcus` prints it, for any device or bound to one (`--device ID`).

const scope = (a: McuAdmissionView) => (a.device === null ? 'any device' : `device ${a.device}`);

export async function mcu(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parse(rest, {
    ...TARGET_OPTIONS,
    device: { type: 'string' },
    note: { type: 'string' },
    json: { type: 'boolean' },
  });
  const api = client(values);
  const one = (what: string): string => {
    if (positionals.length !== 1) throw new UsageError(`mcu ${what} takes one MCU identity hash`);
    return positionals[0]!;
  };
  switch (sub) {
    case 'admit': {
      const r = await api.request<{ admitted: McuAdmissionView; new: boolean }>('POST', '/v1/mcus', {
        identity: one('admit'),
        ...(values.device !== undefined && { device: values.device }),
        ...(values.note !== undefined && { note: values.note }),
      });
      process.stdout.write(
        values.json
          ? json(r)
          : `${r.new ? 'admitted' : 'admitted again'}: MCU ${r.admitted.identity} for ${scope(r.admitted)}\n`,
      );
      return 0;
    }
    case 'revoke': {
      const id = one('revoke').toLowerCase();
      const r = await api.request<{ revoked: McuAdmissionView }>(
        'DELETE',
        `/v1/mcus/${encodeURIComponent(id)}`,
      );
      process.stdout.write(values.json ? json(r) : `revoked: MCU ${r.revoked.identity}\n`);
      return 0;
    }
    case 'list': {
      if (positionals.length > 0) throw new UsageError('mcu list takes no arguments');
      const { admitted } = await api.request<{ admitted: McuAdmissionView[] }>('GET', '/v1/mcus');
      if (values.json) process.stdout.write(json(admitted));
      else if (admitted.length === 0) process.stdout.write('No MCU admitted.\n');
      else
        process.stdout.write(
          table(
            ['IDENTITY', 'DEVICE', 'ADMITTED', 'NOTE'],
            admitted.map((a) => [a.identity, a.device ?? 'any', ago(a.admittedAt), a.note ?? '']),
          ),
        );
      return 0;
    }
    default:
      throw new UsageError(
        `mcu takes admit, revoke or list, got ${sub === undefined ? 'nothing' : `"${sub}"`}`,
      );
  }
}
