import { client, parse, TARGET_OPTIONS, UsageError } from './args.ts';
import { ekEntry } from './ek-file.ts';
import { json } from './output.ts';

export async function admit(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      ...TARGET_OPTIONS,
      ek: { type: 'string' },
      note: { type: 'string' },
      list: { type: 'boolean' },
      json: { type: 'boolean' },
    },
    false,
  );
  void positionals;
  const api = client(values);
  if (values.list) {
    const { admitted } = await api.request<{ admitted: string[] }>('GET', '/v1/admissions');
    process.stdout.write(values.json ? json(admitted) : admitted.map((a) => `${a}\n`).join(''));
    return 0;
  }
  if (values.ek === undefined) throw new UsageError('admit needs --ek FILE|HASH (or --list)');
  const entry = ekEntry(values.ek);
  const r = await api.request<{ admitted: string; new: boolean }>('POST', '/v1/admissions', {
    ek: entry,
    ...(values.note !== undefined && { note: values.note }),
  });
  process.stdout.write(
    values.json
      ? json(r)
      : `${r.new ? 'admitted' : 'already admitted'}: ${r.admitted} (device id ${r.admitted.slice(0, 24)})\n`,
  );
  return 0;
}

export async function revoke(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { ...TARGET_OPTIONS, json: { type: 'boolean' } });
  if (positionals.length !== 1) throw new UsageError('revoke takes one EK hash or device id');
  const r = await client(values).request<{ revoked: string[] }>(
    'DELETE',
    `/v1/admissions/${encodeURIComponent(positionals[0]!.toLowerCase())}`,
  );
  process.stdout.write(values.json ? json(r) : `revoked: ${r.revoked.join(', ')}\n`);
  return 0;
}
