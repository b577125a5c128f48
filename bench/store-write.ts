import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { DeviceRecord, RoundRecord } from '../gateway/model.ts';
import { PostgresStore } from '../gateway/store/postgres.ts';
import { SqliteStore } from '../gateway/store/sqlite.ts';
import type { Store, StoreStats } from '../gateway/store/store.ts';
import { startPostgres } from '../test/support/postgres.ts';
import { type Figure, info } from './figure.ts';
import { printTable } from './table.ts';

// The store's sustained write rate, in rounds per second, SQLite beside PostgreSQL: the writes an
// on-demand round makes through the write-behind queue (every round issued, then appraised with
// its evidence and EAR, and the device's record updated), in waves over a fleet, until all is
// committed. Both engines with their default batching (20 ms, 1,000 writes) and durability: SQLite
// in WAL with synchronous=NORMAL, PostgreSQL with fsync and synchronous commit on (a server of
// its own, started here; or VIGIL_BENCH_DATABASE=postgres://… for one elsewhere).
//
//   npx tsx bench/store-write.ts [--quick]

interface Workload {
  readonly devices: number;
  readonly waves: number;
}

const bytes = (n: number) => new Uint8Array(randomBytes(n));

function device(i: number): DeviceRecord {
  const id = i.toString(16).padStart(24, '0');
  return {
    id,
    ekHash: id + '0'.repeat(40),
    ekPublic: bytes(90),
    ak: { publicArea: bytes(88), name: bytes(34), enrolledAt: 1 },
    attester: 'sim',
    agent: '0.1.0',
    swPcr: 14,
    labels: { swarm: `s${i % 10}` },
    posture: 'affirming',
    reasons: [],
    expires: Date.now() + 600_000,
    clock: { clock: 10_000n + BigInt(i), resetCount: 1, restartCount: 0 },
    firstSeen: 1,
    lastSeen: 1,
  };
}

function issued(deviceId: string, batchId: string): RoundRecord {
  const now = Date.now();
  return {
    id: randomBytes(16).toString('hex'),
    deviceId,
    batchId,
    reason: 'on-demand',
    nonce: bytes(32),
    pcrs: [0, 7, 14],
    logs: { sw: 2 },
    activate: false,
    issuedAt: now,
    deadlineAt: now + 5000,
    state: 'pending',
    codes: [],
  };
}

/** Sizes as the gateway stores them: evidence of a TPM quote with PCRs, an ES256 CWT EAR. */
function appraised(r: RoundRecord): RoundRecord {
  return {
    ...r,
    state: 'appraised',
    status: 'affirming',
    evidence: { exporter: bytes(32), body: bytes(300), attest: bytes(145), sig: bytes(72) },
    appraisedAt: Date.now(),
    ear: bytes(260),
  };
}

/** Waves of a fleet round; resolves with rounds per second, all committed. */
async function drive(store: Store & { stats(): StoreStats }, w: Workload): Promise<Figure['value'] & number> {
  const devices = Array.from({ length: w.devices }, (_, i) => device(i));
  for (const d of devices) store.saveDevice(d);
  await store.flush();
  const t0 = performance.now();
  for (let wave = 0; wave < w.waves; wave++) {
    const batch = `b${wave}`;
    const rounds = devices.map((d) => issued(d.id, batch));
    for (const r of rounds) store.saveRound(r);
    // Evidence comes back over the following milliseconds: the queue commits meanwhile.
    await new Promise((r) => setImmediate(r));
    for (const [i, r] of rounds.entries()) {
      store.saveRound(appraised(r));
      store.saveDevice({ ...devices[i]!, lastSeen: Date.now(), lastRound: r.id });
      if (i % 250 === 249) await new Promise((r) => setImmediate(r));
    }
  }
  await store.flush();
  return (w.devices * w.waves) / ((performance.now() - t0) / 1000);
}

export async function storeWriteFigures(
  o: { quick?: boolean; log?: (line: string) => void } = {},
): Promise<Figure[]> {
  const w: Workload = o.quick ? { devices: 1000, waves: 3 } : { devices: 5000, waves: 6 };
  const log = o.log ?? (() => {});
  const figures: Figure[] = [];
  const detail = (s: StoreStats) => ({
    rounds: w.devices * w.waves,
    commits: s.commits,
    writesPerCommit: Math.round(s.writes / Math.max(1, s.commits)),
  });

  const dir = mkdtempSync(join(tmpdir(), 'vigil-bench-store-'));
  try {
    const sqlite = new SqliteStore(join(dir, 'bench.db'));
    try {
      log('  SQLite (WAL, synchronous=NORMAL)');
      const rate = await drive(sqlite, w);
      figures.push(
        info('store writes, SQLite: rounds committed per second', rate, 'rounds/s', detail(sqlite.stats())),
      );
    } finally {
      await sqlite.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  const external = process.env.VIGIL_BENCH_DATABASE;
  const server = external ? undefined : await startPostgres({ durable: true });
  try {
    const url = external ?? (await server!.createDatabase('bench'));
    const pg = await PostgresStore.open({ url, gatewayId: 'bench' });
    try {
      log(`  PostgreSQL (${external ? 'VIGIL_BENCH_DATABASE' : 'local server, fsync on'})`);
      const rate = await drive(pg, w);
      figures.push(
        info('store writes, PostgreSQL: rounds committed per second', rate, 'rounds/s', detail(pg.stats())),
      );
    } finally {
      await pg.close();
    }
  } finally {
    await server?.stop();
  }
  return figures;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const figures = await storeWriteFigures({
    quick: process.argv.includes('--quick'),
    log: (l) => process.stderr.write(`${l}\n`),
  });
  process.stdout.write(printTable(figures));
  for (const f of figures)
    process.stdout.write(
      `  ${f.name}: ${f.rounds} rounds, ${f.commits} commits, ${f.writesPerCommit} writes per commit\n`,
    );
}
