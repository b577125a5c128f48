import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Child, startChild } from './child.ts';
import { atMost, type Figure, info } from './figure.ts';
import { benchGatewayDir } from './gateway-dir.ts';
import { freePort } from './ports.ts';
import { procStats } from './proc-stats.ts';
import { median } from './stats.ts';

// Figure 2: an on-demand round over the whole fleet. The gateway runs alone in its process; the
// fleet is spread over shard processes. The fleet grows step by step (1,000, 5,000, 10,000) on
// one gateway; at each step: RSS per connected device (after onboarding, after a GC), then
// on-demand rounds timed inside the gateway from the first challenge to the last appraisal, with
// the gateway's CPU seconds read from /proc.

export interface FleetRoundOptions {
  readonly sizes: readonly number[];
  readonly rounds: number;
  /** Devices per shard process. */
  readonly shardSize: number;
  readonly concurrency: number;
  readonly log: (line: string) => void;
  /** Extra node flags for the gateway process (e.g. --cpu-prof). */
  readonly gatewayNodeArgs?: readonly string[];
  /** Writes a CPU profile of the gateway during the last round at each size here. */
  readonly profileDir?: string;
}

interface RoundStats {
  devices: number;
  failed: number;
  issuedMs: number;
  allAppraisedMs: number;
  cpuS: number;
  appraisalP50Ms: number;
  appraisalP99Ms: number;
}

interface MemStats {
  mem: NodeJS.MemoryUsage;
}

export async function fleetRound(o: FleetRoundOptions): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), 'vigil-bench-gw-'));
  const figures: Figure[] = [];
  let gateway: Child | undefined;
  const shards: Child[] = [];
  try {
    const port = await freePort();
    const gw = benchGatewayDir(dir, { host: '127.0.0.1', port });
    gateway = await startChild('gateway-process.ts', [dir], { nodeArgs: o.gatewayNodeArgs ?? [] });
    await gateway.call('gc');
    await new Promise((r) => setTimeout(r, 200));
    const base = procStats(gateway.pid);
    const baseHeap = (await gateway.call<MemStats>('stats')).mem;
    o.log(`  gateway idle: RSS ${(base.rssKb / 1024).toFixed(1)} MB`);
    let connected = 0;
    for (const size of o.sizes) {
      const t0 = performance.now();
      const adding: Promise<unknown>[] = [];
      while (connected < size) {
        const count = Math.min(o.shardSize, size - connected);
        const shard = await startChild('fleet-process.ts', []);
        shards.push(shard);
        adding.push(
          shard.call('start', {
            url: `mqtts://localhost:${gw.port}`,
            caPath: gw.caPath,
            count,
            concurrency: o.concurrency,
            seedPrefix: `bench/${shards.length}`,
          }),
        );
        connected += count;
      }
      await Promise.all(adding);
      const onboardMs = performance.now() - t0;
      await gateway.call('gc');
      await new Promise((r) => setTimeout(r, 300));
      const after = procStats(gateway.pid);
      const perDeviceKb = (after.rssKb - base.rssKb) / size;
      const stats = await gateway.call<{ attested: number; mem: NodeJS.MemoryUsage }>('stats');
      // JS heap against the rest (TLS and socket buffers, OpenSSL objects, SQLite cache).
      const heapKbPerDevice = (stats.mem.heapUsed - baseHeap.heapUsed) / 1024 / size;
      const externalKbPerDevice =
        (stats.mem.external + stats.mem.arrayBuffers - baseHeap.external - baseHeap.arrayBuffers) /
        1024 /
        size;
      const fleetMem = await Promise.all(shards.map((s) => s.call<MemStats>('stats')));
      const fleetRss = shards.map((s) => procStats(s.pid).rssKb).reduce((a, b) => a + b, 0);
      o.log(
        `  ${size} devices onboarded in ${(onboardMs / 1000).toFixed(1)} s; gateway RSS ${(after.rssKb / 1024).toFixed(0)} MB ` +
          `(${perDeviceKb.toFixed(1)} KB/device: JS heap ${heapKbPerDevice.toFixed(1)}, external ${externalKbPerDevice.toFixed(1)}), sim RSS ${(fleetRss / size).toFixed(1)} KB/device, ` +
          `sim heap ${(fleetMem.reduce((a, m) => a + m.mem.heapUsed, 0) / size / 1024).toFixed(1)} KB/device`,
      );
      if (stats.attested !== size) throw new Error(`${stats.attested} of ${size} connections attested`);

      const runs: (RoundStats & { procCpuS: number; simCpuS: number })[] = [];
      for (let i = 0; i < o.rounds; i++) {
        if (o.profileDir && i === o.rounds - 1) await gateway.call('profileStart');
        const before = procStats(gateway.pid);
        const simBefore = shards.reduce((a, sh) => a + procStats(sh.pid).cpuS, 0);
        const r = await gateway.call<RoundStats>('round', { batchId: `bench-${size}-${i}` });
        const procCpuS = procStats(gateway.pid).cpuS - before.cpuS;
        const simCpuS = shards.reduce((a, sh) => a + procStats(sh.pid).cpuS, 0) - simBefore;
        if (o.profileDir && i === o.rounds - 1) {
          const path = await gateway.call<string>('profileStop', {
            path: join(o.profileDir, `round-${size}.cpuprofile`),
          });
          o.log(`  profile of this round: ${path}`);
        }
        runs.push({ ...r, procCpuS, simCpuS });
        o.log(
          `  round ${i + 1}: ${r.devices} appraised in ${r.allAppraisedMs.toFixed(0)} ms (issue ${r.issuedMs.toFixed(0)} ms), ` +
            `gateway CPU ${procCpuS.toFixed(2)} s, sim fleet CPU ${simCpuS.toFixed(2)} s, appraisal p50 ${r.appraisalP50Ms.toFixed(3)} ms, failed ${r.failed}`,
        );
        // Let the fleet settle (results delivered) before the next round.
        await new Promise((r) => setTimeout(r, 300));
      }
      const peak = procStats(gateway.pid);
      const best = [...runs].sort((a, b) => a.allAppraisedMs - b.allAppraisedMs)[0]!;
      const details = {
        devices: size,
        rounds: runs.map((r) => ({
          allAppraisedMs: Math.round(r.allAppraisedMs),
          issuedMs: Math.round(r.issuedMs),
          cpuS: Number(r.procCpuS.toFixed(2)),
          simFleetCpuS: Number(r.simCpuS.toFixed(2)),
          failed: r.failed,
        })),
        onboardS: Number((onboardMs / 1000).toFixed(1)),
        simRssKbPerDevice: Number((fleetRss / size).toFixed(1)),
      };
      const ms = median(runs.map((r) => r.allAppraisedMs));
      const name = `on-demand round, ${size} sim devices: all appraised`;
      figures.push(
        size === 10_000
          ? atMost(name, ms / 1000, 's', 2.5, { ...details, bestS: best.allAppraisedMs / 1000 })
          : info(name, ms / 1000, 's', { ...details, bestS: best.allAppraisedMs / 1000 }),
        info(`on-demand round, ${size} sim devices: gateway CPU`, median(runs.map((r) => r.procCpuS)), 's', {
          devices: size,
          perDeviceMs: Number(((median(runs.map((r) => r.procCpuS)) * 1000) / size).toFixed(3)),
        }),
        info(`gateway peak RSS, ${size} devices`, peak.hwmKb / 1024, 'MB', { devices: size }),
        atMost(`gateway RSS per connected device, ${size} devices`, perDeviceKb, 'KB', 40, {
          devices: size,
          rssMb: Number((after.rssKb / 1024).toFixed(1)),
          idleRssMb: Number((base.rssKb / 1024).toFixed(1)),
          jsHeapKbPerDevice: Number(heapKbPerDevice.toFixed(1)),
          externalKbPerDevice: Number(externalKbPerDevice.toFixed(1)),
        }),
      );
    }
    return figures;
  } finally {
    await Promise.allSettled(shards.map((s) => s.stop()));
    await gateway?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
