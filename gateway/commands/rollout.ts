import type { RolloutNotice, RolloutView } from '../rollouts/view.ts';
import { client, parse, TARGET_OPTIONS, UsageError } from './args.ts';
import { ago, json, table } from './output.ts';

// `vigil-gateway rollout …`: start a rollout on a swarm, watch it, act on it (docs/rollouts.md).
// Options are passed to the API as typed: the API is the one parser of waves, shares and spans.

const POLL_MS = 1000;
/** Phases a watch stops at: nothing moves without an operator any more. */
const SETTLED = new Set(['paused', 'aborted', 'completed', 'cancelled', 'rolled-back', 'committed']);
const ACTIONS = ['pause', 'resume', 'cancel', 'rollback', 'commit'] as const;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const short = (digest: string | null) => (digest === null ? '-' : `${digest.slice(0, 16)}…`);

const START_OPTIONS = {
  ...TARGET_OPTIONS,
  swarm: { type: 'string' },
  release: { type: 'string' },
  waves: { type: 'string' },
  success: { type: 'string' },
  abort: { type: 'string' },
  barrier: { type: 'string' },
  required: { type: 'string' },
  timeout: { type: 'string' },
  force: { type: 'boolean' },
  json: { type: 'boolean' },
} as const;

async function start(args: string[]): Promise<number> {
  const { values } = parse(args, START_OPTIONS, false);
  if (values.swarm === undefined || values.release === undefined)
    throw new UsageError('rollout start needs --swarm KEY=VALUE and --release NAME@VERSION');
  const body = {
    swarm: values.swarm,
    release: values.release,
    ...(values.waves !== undefined && { waves: values.waves }),
    ...(values.success !== undefined && { success: values.success }),
    ...(values.abort !== undefined && { abort: values.abort }),
    ...(values.barrier !== undefined && { barrier: values.barrier }),
    ...(values.required !== undefined && { required: values.required }),
    ...(values.timeout !== undefined && { timeouts: values.timeout }),
    ...(values.force && { force: true }),
  };
  const { rollout } = await client(values).request<{ rollout: RolloutView }>('POST', '/v1/rollouts', body);
  process.stdout.write(values.json ? json(rollout) : `${rollout.id}\n`);
  const members = rollout.waves.reduce((n, w) => n + w.members.length, 0);
  if (!values.json)
    process.stderr.write(
      `rolling ${rollout.release.name} ${rollout.release.version} (seq ${rollout.release.seq}) to ${members} device${members === 1 ? '' : 's'} of ${rollout.swarm} in ${rollout.waves.length} wave${rollout.waves.length === 1 ? '' : 's'}; watch it with \`vigil-gateway rollout status ${rollout.id} --watch\`\n`,
    );
  return 0;
}

/** The status as an operator reads it. */
export function statusText(v: RolloutView): string {
  const out: string[] = [];
  out.push(
    `Rollout ${v.id}: ${v.release.name} ${v.release.version} (seq ${v.release.seq}) to ${v.swarm}, ${v.phase}${v.why ? ` (${v.why})` : ''}`,
  );
  const b = v.barrierDetail;
  out.push(
    `Barrier (${v.spec.barrier}${v.spec.required.length ? `, required ${v.spec.required.join(',')}` : ''}): ${b.holds ? 'holds' : 'does not hold'}, ${b.good.length} converged and fresh, ${b.needed} needed${b.holds || b.missing.length === 0 ? '' : `; missing ${b.missing.join(', ')}`}`,
  );
  for (const w of v.waves) {
    const name =
      w.wave === 'trailing' ? 'trailing wave' : w.wave === 0 ? 'wave 0 (canary)' : `wave ${w.wave}`;
    out.push(
      '',
      `${name[0]!.toUpperCase()}${name.slice(1)}: ${w.started ? `${w.converged}/${w.members.length} converged` : 'not started'}`,
    );
    out.push(
      table(
        ['DEVICE', 'STATE', 'CODE', 'FRESH', 'DETAIL'],
        w.members.map((m) => [m.id, m.state, m.code ?? '-', m.fresh ? 'yes' : 'no', m.detail ?? '']),
      ).trimEnd(),
    );
  }
  out.push('', `What the last quote of each member shows for ${v.release.name}:`);
  out.push(
    table(
      ['DIGEST', 'VERSION', 'TARGET', 'MEMBERS'],
      v.digests.map((g) => [
        short(g.digest),
        g.version ?? '?',
        g.target ? 'yes' : 'no',
        `${g.members.length}: ${g.members.join(', ')}`,
      ]),
    ).trimEnd(),
  );
  if (v.operationsDetail.length > 0) {
    out.push('', 'Operations:');
    out.push(
      table(
        ['ID', 'NAME', 'AT', 'STATE', 'TOLD', 'RESULTS'],
        v.operationsDetail.map((o) => {
          const results = Object.values(o.results);
          const done = results.filter((r) => r.state === 'done').length;
          return [
            o.id.slice(0, 12),
            o.name,
            `${new Date(o.at).toISOString()} (${ago(o.at)})`,
            o.state + (o.reasons.length ? `: ${o.reasons.join('; ')}` : ''),
            String(o.told.length),
            `${done} done, ${results.length - done} other, ${o.told.length - results.length} pending`,
          ];
        }),
      ).trimEnd(),
    );
  }
  return `${out.join('\n')}\n`;
}

async function status(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    ...TARGET_OPTIONS,
    json: { type: 'boolean' },
    watch: { type: 'boolean' },
  });
  if (positionals.length !== 1) throw new UsageError('rollout status takes one rollout id');
  const api = client(values);
  const path = `/v1/rollouts/${encodeURIComponent(positionals[0]!)}`;
  let last = '';
  for (;;) {
    const { rollout } = await api.request<{ rollout: RolloutView }>('GET', path);
    const text = values.json ? json(rollout) : statusText(rollout);
    if (text !== last) process.stdout.write(values.watch && last !== '' ? `\n${text}` : text);
    last = text;
    if (!values.watch || SETTLED.has(rollout.phase)) return 0;
    await sleep(POLL_MS);
  }
}

async function list(args: string[]): Promise<number> {
  const { values } = parse(args, { ...TARGET_OPTIONS, json: { type: 'boolean' } }, false);
  const { rollouts } = await client(values).request<{ rollouts: RolloutNotice[] }>('GET', '/v1/rollouts');
  if (values.json) {
    process.stdout.write(json(rollouts));
    return 0;
  }
  process.stdout.write(
    table(
      ['ID', 'SWARM', 'RELEASE', 'PHASE', 'BARRIER', 'UPDATED'],
      rollouts.map((r) => [
        r.id,
        r.swarm,
        `${r.release.name} ${r.release.version}`,
        r.phase,
        `${r.barrier.holds ? 'holds' : 'no'} ${r.barrier.converged}/${r.barrier.needed}`,
        ago(r.updatedAt),
      ]),
    ),
  );
  return 0;
}

async function act(action: (typeof ACTIONS)[number], args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { ...TARGET_OPTIONS, json: { type: 'boolean' } });
  if (positionals.length !== 1) throw new UsageError(`rollout ${action} takes one rollout id`);
  const { rollout } = await client(values).request<{ rollout: RolloutView }>(
    'POST',
    `/v1/rollouts/${encodeURIComponent(positionals[0]!)}/${action}`,
  );
  process.stdout.write(
    values.json
      ? json(rollout)
      : `${rollout.id}: ${rollout.phase}${rollout.why ? ` (${rollout.why})` : ''}\n`,
  );
  return 0;
}

export async function rollout(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'start') return start(rest);
  if (sub === 'status') return status(rest);
  if (sub === 'list') return list(rest);
  if (ACTIONS.includes(sub as (typeof ACTIONS)[number])) return act(sub as (typeof ACTIONS)[number], rest);
  throw new UsageError(
    `rollout takes start, status, list, ${ACTIONS.join(', ')}; got ${sub === undefined ? 'nothing' : JSON.stringify(sub)}`,
  );
}
