import type { DeviceView } from '../api/views.ts';
import { client, parse, TARGET_OPTIONS, UsageError } from './args.ts';
import { json, labelsText } from './output.ts';

export async function label(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    ...TARGET_OPTIONS,
    remove: { type: 'string', multiple: true },
    json: { type: 'boolean' },
  });
  const [id, ...pairs] = positionals;
  if (id === undefined || (pairs.length === 0 && !values.remove?.length))
    throw new UsageError('label takes a device id and at least one K=V or --remove K');
  const set: Record<string, string> = {};
  for (const p of pairs) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new UsageError(`label "${p}": expected KEY=VALUE, for example swarm=kitchen`);
    set[p.slice(0, eq)] = p.slice(eq + 1);
  }
  const { device } = await client(values).request<{ device: DeviceView }>(
    'PATCH',
    `/v1/devices/${encodeURIComponent(id)}/labels`,
    { set, remove: values.remove ?? [] },
  );
  process.stdout.write(values.json ? json(device) : `${device.id}: ${labelsText(device.labels)}\n`);
  return 0;
}
