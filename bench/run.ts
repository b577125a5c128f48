import { writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { agentFigures } from './agent.ts';
import { appraisalFigures } from './appraisal.ts';
import type { Figure } from './figure.ts';
import { fleetRound } from './fleet-round.ts';
import { quoteFigures } from './quote-compare.ts';
import { reattestFigures } from './reattest.ts';
import { storeWriteFigures } from './store-write.ts';
import { printTable } from './table.ts';
import { tpmSessionFigures } from './tpm-session.ts';

// `npm run bench [-- --quick] [-- --only 1,2,...] [-- --profile DIR]`: the figures of DESIGN.md
// ("Figures we hold ourselves to"), each measured here by this command, printed beside its goal
// and written to bench/results.json. Nothing is hard-coded; what cannot be measured on this
// machine says so instead of a number.

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const onlyArg = args[args.indexOf('--only') + 1];
const only = args.includes('--only') && onlyArg ? new Set(onlyArg.split(',').map(Number)) : undefined;
const profileDir = args.includes('--profile') ? args[args.indexOf('--profile') + 1] : undefined;
const want = (n: number) => only === undefined || only.has(n);
const log = (line: string) => process.stderr.write(`${line}\n`);

const plan = quick
  ? {
      appraisal: { samples: 100, passes: 10 },
      sizes: [500],
      peerSize: 500,
      rounds: 2,
      agentRounds: 10,
      quotes: 10,
      reattest: 3,
      sessionRounds: 20,
    }
  : {
      appraisal: { samples: 300, passes: 30 },
      sizes: [1000, 5000, 10_000, 20_000],
      peerSize: 10_000,
      rounds: 3,
      agentRounds: 40,
      quotes: 40,
      reattest: 7,
      sessionRounds: 100,
    };

const figures: Figure[] = [];
const started = performance.now();
const section = async (n: number, title: string, run: () => Promise<Figure[]>) => {
  if (!want(n)) return;
  log(`[${n}] ${title}`);
  const t0 = performance.now();
  try {
    const got = await run();
    figures.push(...got.map((f) => ({ figure: n, ...f })));
  } catch (e) {
    log(`  failed: ${(e as Error).stack ?? e}`);
    figures.push({
      figure: n,
      name: title,
      value: null,
      unit: '',
      goal: '',
      pass: false,
      note: `failed: ${(e as Error).message}`,
    });
  }
  log(`  (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
};

await section(1, 'gateway CPU per appraisal, in-process', () => appraisalFigures(plan.appraisal));
await section(
  2,
  `on-demand round over ${plan.sizes.join(', ')} sim devices; beside plain aedes and mosquitto`,
  () =>
    fleetRound({
      sizes: plan.sizes,
      peerSize: plan.peerSize,
      rounds: plan.rounds,
      shardSize: 2500,
      concurrency: 64,
      slice: 256,
      log,
      ...(profileDir !== undefined && { profileDir }),
    }),
);
await section(3, 're-attestation vs reconnect at 50 ms RTT', () =>
  reattestFigures({ samples: plan.reattest, log }),
);
await section(4, 'agent memory and CPU per round; 5: bytes per periodic round', () =>
  agentFigures({ rounds: plan.agentRounds, log }),
);
await section(6, 'quote on swtpm: our stack vs tpm2_quote', () => quoteFigures({ samples: plan.quotes }));
// Informational, beside the goals: what the choices of this wave cost.
await section(7, 'TPM bus: in the clear vs salted, encrypted sessions', () =>
  tpmSessionFigures({ rounds: plan.sessionRounds }),
);
await section(8, 'store writes: SQLite vs PostgreSQL', () => storeWriteFigures({ quick, log }));

const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GB, Node ${process.versions.node}, OpenSSL ${process.versions.openssl}`;
process.stdout.write(printTable(figures));
process.stdout.write(
  `\n${quick ? 'quick' : 'full'} run on ${machine}, ${((performance.now() - started) / 1000).toFixed(0)} s\n`,
);
if (!only) {
  const path = new URL('./results.json', import.meta.url);
  writeFileSync(path, `${JSON.stringify(figures, null, 2)}\n`);
  process.stdout.write(`written to bench/results.json\n`);
}
