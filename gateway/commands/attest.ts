import type { BatchProgress } from '../rounds/batches.ts';
import { client, duration, parse, TARGET_OPTIONS, UsageError } from './args.ts';
import { json, table } from './output.ts';
import { progressView } from './progress.ts';

const POLL_MS = 250;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The whole point of the exit code: every device asked, answered and affirming. */
export function allAffirming(p: BatchProgress): boolean {
  return (
    p.done && p.devices > 0 && p.results.every((r) => r.state === 'appraised' && r.status === 'affirming')
  );
}

function summary(p: BatchProgress): string {
  const rows: [string, number][] = [
    ['affirming', p.appraised.affirming],
    ['warning', p.appraised.warning],
    ['contraindicated', p.appraised.contraindicated],
    ['none', p.appraised.none],
    ['stale', p.stale],
    ['abandoned', p.abandoned],
    ['unreachable', p.unreachable],
    ['pending', p.pending],
  ];
  const took =
    p.completedAt === null ? 'not done' : `done in ${((p.completedAt - p.createdAt) / 1000).toFixed(1)} s`;
  let out = `Batch ${p.id}: ${p.devices} device${p.devices === 1 ? '' : 's'}, ${took}\n\n`;
  out += table(
    ['STATUS', 'DEVICES'],
    rows.filter(([s, n]) => n > 0 || s === 'affirming').map(([s, n]) => [s, String(n)]),
  );
  const failures = p.results.filter((r) => !(r.state === 'appraised' && r.status === 'affirming'));
  if (failures.length > 0) {
    out += '\nNot affirming:\n';
    out += table(
      ['DEVICE', 'RESULT', 'CODES', 'DETAIL'],
      failures.map((r) => [
        r.id,
        r.state === 'appraised' ? (r.status ?? 'none') : r.state,
        r.codes.join(',') || '-',
        r.detail ?? '',
      ]),
    );
  }
  return out;
}

export async function attest(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    ...TARGET_OPTIONS,
    all: { type: 'boolean' },
    label: { type: 'string' },
    timeout: { type: 'string' },
    json: { type: 'boolean' },
  });
  const forms = [values.all === true, values.label !== undefined, positionals.length > 0].filter(
    Boolean,
  ).length;
  if (forms !== 1) throw new UsageError('attest takes exactly one of --all, --label K=V or device ids');
  const selector = values.all
    ? { all: true }
    : values.label !== undefined
      ? { label: values.label }
      : { ids: positionals };
  const timeoutMs = values.timeout === undefined ? undefined : duration(values.timeout, '--timeout');

  const api = client(values);
  let p = await api.request<BatchProgress>('POST', '/v1/batches', selector);
  const until = Date.now() + (timeoutMs ?? p.deadlineAt - p.createdAt + 30_000);
  const view = progressView(process.stderr);
  view.update(p);
  while (!p.done && Date.now() < until) {
    await sleep(Math.min(POLL_MS, Math.max(0, until - Date.now())));
    p = await api.request<BatchProgress>('GET', `/v1/batches/${p.id}`);
    view.update(p);
  }
  view.end();
  process.stdout.write(values.json ? json(p) : summary(p));
  if (!p.done) process.stderr.write(`vigil-gateway: stopped waiting; ${p.pending} round(s) still pending\n`);
  return allAffirming(p) ? 0 : 1;
}
