import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { apiClient } from '../gateway/commands/client.ts';
import { loadConfig } from '../gateway/config.ts';
import { SIM_SOFTWARE, softwareReference } from '../test/equipment/sim/attester.ts';
import { type Child, startChild } from './child.ts';
import { atMost, type Figure, info } from './figure.ts';
import { benchGatewayDir } from './gateway-dir.ts';
import { freePort } from './ports.ts';
import { procStats } from './proc-stats.ts';
import { lostRounds, parseTold, staleWhileAnswering, unrecordedResults } from './soak-lost.ts';
import { soakSvg } from './soak-plot.ts';
import { type Sample, segmentTrends } from './soak-trend.ts';
import { printTable } from './table.ts';

// `npm run soak -- --minutes N [--devices N] ...`: the gateway in its own process under a sim
// fleet in shard processes (as the bench runs them) for N minutes: periodic rounds every few
// seconds, devices dropping and coming back, on-demand rounds over the fleet, policy reloads and
// a gateway restart halfway. It reports rounds issued, appraised and lost (soak-lost.ts says
// precisely what counts), posture events, and the gateway's RSS and open descriptors over time
// with their least-squares slopes (soak-trend.ts), as a table, bench/soak-results.json and a plot
// (docs/soak.svg). Not part of `npm test`: it runs for minutes and wants a quiet machine.

const USAGE = `npm run soak -- [--minutes 20] [--devices 3000] [--shard-size 1000] [--periodic-ms 5000]
  [--deadline-ms 3000] [--churn-per-min N] [--on-demand-every 60] [--reload-every 90]
  [--sample-every 5] [--heap-every 60] [--restart graceful|kill|none] [--svg docs/soak.svg]
  [--json bench/soak-results.json] [--keep-dir]`;

interface Options {
  readonly minutes: number;
  readonly devices: number;
  readonly shardSize: number;
  readonly periodicMs: number;
  readonly deadlineMs: number;
  readonly churnPerMin: number;
  readonly onDemandEveryS: number;
  readonly reloadEveryS: number;
  readonly sampleEveryS: number;
  readonly heapEveryS: number;
  readonly restart: 'graceful' | 'kill' | 'none';
  readonly svg: string;
  readonly json: string;
  readonly keepDir: boolean;
}

function options(argv: string[]): Options {
  const { values: v } = parseArgs({
    args: argv,
    strict: true,
    options: {
      minutes: { type: 'string', default: '20' },
      devices: { type: 'string', default: '3000' },
      'shard-size': { type: 'string', default: '1000' },
      'periodic-ms': { type: 'string', default: '5000' },
      'deadline-ms': { type: 'string', default: '3000' },
      'churn-per-min': { type: 'string' },
      'on-demand-every': { type: 'string', default: '60' },
      'reload-every': { type: 'string', default: '90' },
      'sample-every': { type: 'string', default: '5' },
      'heap-every': { type: 'string', default: '60' },
      restart: { type: 'string', default: 'graceful' },
      svg: { type: 'string', default: 'docs/soak.svg' },
      json: { type: 'string', default: 'bench/soak-results.json' },
      'keep-dir': { type: 'boolean', default: false },
    },
  });
  const num = (flag: string, text: string | undefined, min: number) => {
    const n = Number(text);
    if (!Number.isFinite(n) || n < min)
      throw new Error(`--${flag} must be a number of at least ${min}, got ${JSON.stringify(text)}\n${USAGE}`);
    return n;
  };
  const restart = v.restart as Options['restart'];
  if (!['graceful', 'kill', 'none'].includes(restart))
    throw new Error(`--restart must be graceful, kill or none, got ${JSON.stringify(v.restart)}\n${USAGE}`);
  const devices = num('devices', v.devices, 1);
  const periodicMs = num('periodic-ms', v['periodic-ms'], 1000);
  const deadlineMs = num('deadline-ms', v['deadline-ms'], 100);
  if (deadlineMs >= periodicMs)
    throw new Error(`--deadline-ms must be below --periodic-ms (policy rule)\n${USAGE}`);
  return {
    minutes: num('minutes', v.minutes, 0.5),
    devices,
    shardSize: num('shard-size', v['shard-size'], 1),
    periodicMs,
    deadlineMs,
    // Default: 5 % of the fleet drops and comes back each minute.
    churnPerMin:
      v['churn-per-min'] === undefined
        ? Math.ceil(devices * 0.05)
        : num('churn-per-min', v['churn-per-min'], 0),
    onDemandEveryS: num('on-demand-every', v['on-demand-every'], 5),
    reloadEveryS: num('reload-every', v['reload-every'], 5),
    sampleEveryS: num('sample-every', v['sample-every'], 1),
    heapEveryS: num('heap-every', v['heap-every'], 5),
    restart,
    svg: v.svg!,
    json: v.json!,
    keepDir: v['keep-dir']!,
  };
}

const log = (line: string) => process.stderr.write(`${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function policy(o: Options, jitter: number) {
  return {
    admission: { mode: 'open' },
    allowSim: true,
    referenceValues: { software: [softwareReference(SIM_SOFTWARE)] },
    rounds: { periodicMs: o.periodicMs, deadlineMs: o.deadlineMs, jitter },
  };
}

const openFds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

async function soak(o: Options): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'vigil-soak-'));
  const shards: Child[] = [];
  let gateway: Child | undefined;
  try {
    const port = await freePort();
    const gw = benchGatewayDir(dir, { host: '127.0.0.1', port, policy: policy(o, 0.1) });
    const policyFile = loadConfig(dir).policy;
    gateway = await startChild('gateway-process.ts', [dir]);
    log(`soak: ${o.devices} sim devices, ${o.minutes} min, periodic ${o.periodicMs} ms, gateway dir ${dir}`);

    const t0Onboard = performance.now();
    const count = Math.ceil(o.devices / o.shardSize);
    await Promise.all(
      Array.from({ length: count }, async (_, i) => {
        const shard = await startChild('fleet-process.ts', []);
        shards.push(shard);
        await shard.call('start', {
          url: `mqtts://localhost:${gw.port}`,
          caPath: gw.caPath,
          count: Math.min(o.shardSize, o.devices - i * o.shardSize),
          concurrency: 64,
          seedPrefix: `soak/${i}`,
          reconnect: true,
          record: join(dir, `told-${i}.txt`),
        });
      }),
    );
    log(`  fleet onboarded in ${((performance.now() - t0Onboard) / 1000).toFixed(1)} s`);

    // The run: a tick a second; each activity on its own period.
    const started = Date.now();
    const elapsed = () => (Date.now() - started) / 1000;
    const samples: Sample[] = [];
    const batches: string[] = [];
    let segment = 0;
    let reloads = 0;
    let churned = 0;
    let failedCalls = 0;
    let restartAt: number | undefined;
    let recoveredAfterS: number | undefined;
    const next = { sample: 0, heap: 0, churn: 10, onDemand: o.onDemandEveryS, reload: o.reloadEveryS };
    const halfway = (o.minutes * 60) / 2;
    while (elapsed() < o.minutes * 60) {
      const t = elapsed();
      if (t >= next.sample) {
        next.sample += o.sampleEveryS;
        // Now and then the live heap: a full collection first (the gateway runs with --expose-gc),
        // then what is still in use. RSS is read before it, so the collection does not shape RSS.
        const p = procStats(gateway.pid);
        const fds = openFds(gateway.pid);
        const heap = t >= next.heap;
        if (heap) {
          next.heap += o.heapEveryS;
          await gateway.call('gc');
        }
        const stats = await gateway.call<{ attested: number; mem: NodeJS.MemoryUsage }>('stats');
        samples.push({
          t,
          rssMb: p.rssKb / 1024,
          fds,
          attested: stats.attested,
          segment,
          ...(heap && { liveHeapMb: stats.mem.heapUsed / 2 ** 20 }),
        });
        if (restartAt !== undefined && recoveredAfterS === undefined && stats.attested >= 0.95 * o.devices)
          recoveredAfterS = t - restartAt;
      }
      if (t >= next.churn) {
        next.churn += 10;
        const each = Math.round(o.churnPerMin / 6 / shards.length);
        for (const s of shards) churned += await s.call<number>('churn', { count: each, downMs: 5000 });
      }
      if (t >= next.onDemand) {
        next.onDemand += o.onDemandEveryS;
        await apiClient({ dir })
          .request<{ id: string }>('POST', '/v1/batches', { all: true })
          .then((b) => batches.push(b.id))
          .catch((e: Error) => {
            failedCalls++;
            log(`  on-demand batch refused: ${e.message}`);
          });
      }
      if (t >= next.reload) {
        next.reload += o.reloadEveryS;
        reloads++;
        writeFileSync(policyFile, JSON.stringify(policy(o, reloads % 2 === 0 ? 0.1 : 0.15), null, 2));
      }
      if (o.restart !== 'none' && restartAt === undefined && t >= halfway) {
        log(`  restarting the gateway (${o.restart}) at ${(t / 60).toFixed(1)} min`);
        restartAt = t;
        if (o.restart === 'kill') {
          const exited = new Promise((r) => gateway!.process.once('exit', r));
          gateway.process.kill('SIGKILL');
          await exited;
        } else await gateway.stop();
        gateway = await startChild('gateway-process.ts', [dir]);
        segment++;
        next.sample = elapsed();
        next.heap = next.sample;
      }
      await sleep(1000);
    }

    // Quiet: no more churn or batches; every connected device answers at least one more round.
    log('  quiet phase: measuring');
    await sleep(o.periodicMs * 2);
    const withinMs = o.periodicMs * 1.5 + o.deadlineMs;
    const answering = (
      await Promise.all(
        shards.map((s) => s.call<{ id: string; status?: string }[]>('answering', { withinMs })),
      )
    ).flat();
    const api = apiClient({ dir });
    const { devices } = await api.request<{ devices: { id: string; posture: string }[] }>(
      'GET',
      '/v1/devices',
    );
    const stale = staleWhileAnswering(
      answering.map((a) => ({ id: a.id, status: a.status })),
      new Map(devices.map((d) => [d.id, d.posture])),
    );
    const batchOutcomes = await Promise.all(
      batches.map((id) =>
        api.request<{ done: boolean; devices: number; answered: number; stale: number; abandoned: number }>(
          'GET',
          `/v1/batches/${id}`,
        ),
      ),
    );
    const fleetCounts = await Promise.all(shards.map((s) => s.call<{ results: number }>('counts')));
    const results = fleetCounts.reduce((n, c) => n + c.results, 0);

    // The fleet leaves: its rounds in flight are abandoned. Then nothing may stay pending.
    await Promise.all(shards.splice(0).map((s) => s.stop()));
    await sleep(o.deadlineMs + 2000);
    const db = new Database(join(dir, 'vigil.db'), { readonly: true, fileMustExist: true });
    let unsettled: string[];
    try {
      const pending = db
        .prepare("SELECT id, deadline_at AS deadlineAt FROM rounds WHERE state = 'pending'")
        .all() as { id: string; deadlineAt: number }[];
      unsettled = lostRounds(pending, Date.now(), 1000);
    } finally {
      db.close();
    }
    await gateway.stop();
    gateway = undefined;

    const store = new Database(join(dir, 'vigil.db'), { readonly: true, fileMustExist: true });
    let byState: Map<string, number>;
    let postureEvents: number;
    let unrecorded: ReturnType<typeof unrecordedResults>;
    let told = 0;
    try {
      byState = new Map(
        (
          store.prepare('SELECT state, count(*) AS n FROM rounds GROUP BY state').all() as {
            state: string;
            n: number;
          }[]
        ).map((r) => [r.state, r.n]),
      );
      postureEvents = (store.prepare('SELECT count(*) AS n FROM posture_events').get() as { n: number }).n;
      const get = store.prepare<[string], { state: string; status: string | null }>(
        'SELECT state, status FROM rounds WHERE id = ?',
      );
      const all = readdirSync(dir)
        .filter((f) => f.startsWith('told-'))
        .flatMap((f) => parseTold(readFileSync(join(dir, f), 'utf8')));
      told = all.length;
      unrecorded = unrecordedResults(all, (id) => get.get(id));
    } finally {
      store.close();
    }

    const trends = segmentTrends(samples);
    const issued = [...byState.values()].reduce((a, b) => a + b, 0);
    const figures: Figure[] = [
      info('rounds issued (stored)', issued, ''),
      info('rounds appraised', byState.get('appraised') ?? 0, ''),
      info('rounds stale (no answer by the deadline)', byState.get('stale') ?? 0, ''),
      info('rounds abandoned (connection closed first)', byState.get('abandoned') ?? 0, ''),
      info('results the devices received', told, '', { countedByShards: results }),
      atMost('lost: rounds issued that never settled', unsettled.length, '', 0, {
        examples: unsettled.slice(0, 5),
      }),
      atMost('lost: results told but not recorded as told', unrecorded.length, '', 0, {
        examples: unrecorded.slice(0, 5),
      }),
      atMost('lost: answering devices not affirming', stale.length, '', 0, { examples: stale.slice(0, 5) }),
      info('posture events', postureEvents, ''),
      info('on-demand batches', batches.length, '', {
        done: batchOutcomes.filter((b) => b.done).length,
        answered: batchOutcomes.reduce((n, b) => n + b.answered, 0),
        stale: batchOutcomes.reduce((n, b) => n + b.stale, 0),
        abandoned: batchOutcomes.reduce((n, b) => n + b.abandoned, 0),
        refused: failedCalls,
      }),
      info('devices dropped and reconnected (churn)', churned, ''),
      info('policy reloads', reloads, ''),
      ...(restartAt === undefined
        ? []
        : [
            info(
              `restart (${o.restart}): 95% of devices attested again after`,
              recoveredAfterS ?? Number.NaN,
              's',
            ),
          ]),
      ...trends.flatMap((t) => [
        info(`gateway ${t.segment === 0 ? 'before' : 'after'} restart: RSS slope`, t.rss.slope, 'MB/min', {
          fittedFromS: Math.round(t.from),
          fittedToS: Math.round(t.to),
        }),
        info(
          `gateway ${t.segment === 0 ? 'before' : 'after'} restart: open descriptors slope`,
          t.fds.slope,
          '/min',
        ),
        ...(t.liveHeap
          ? [
              info(
                `gateway ${t.segment === 0 ? 'before' : 'after'} restart: live heap slope (after a full GC)`,
                t.liveHeap.slope,
                'MB/min',
              ),
            ]
          : []),
      ]),
      info('gateway RSS at the end', samples.at(-1)?.rssMb ?? Number.NaN, 'MB'),
      info(
        'gateway live heap at the end (after a full GC)',
        samples.findLast((s) => s.liveHeapMb !== undefined)?.liveHeapMb ?? Number.NaN,
        'MB',
      ),
      info('gateway open descriptors at the end', samples.at(-1)?.fds ?? Number.NaN, ''),
    ];
    const title = `Vigil soak: ${o.devices} sim devices, ${o.minutes} min, periodic ${o.periodicMs / 1000} s, restart ${o.restart}`;
    writeFileSync(o.svg, soakSvg(samples, trends, restartAt, title));
    writeFileSync(
      o.json,
      `${JSON.stringify({ options: o, at: new Date(started).toISOString(), restartAtS: restartAt ?? null, figures, samples }, null, 2)}\n`,
    );
    process.stdout.write(printTable(figures));
    process.stdout.write(`\nplot: ${o.svg}; figures and samples: ${o.json}\n`);
    const lost = unsettled.length + unrecorded.length + stale.length;
    if (lost > 0) process.exitCode = 1;
  } finally {
    await Promise.allSettled(shards.map((s) => s.stop()));
    await gateway?.stop();
    if (o.keepDir) log(`  gateway directory kept: ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

await soak(options(process.argv.slice(2)));
