import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Child, startChild } from './child.ts';
import { atLeast, atMost, type Figure, info, unmeasured } from './figure.ts';
import { type FleetServer, SERVER_LABEL, type ServerKind, startFleetServer } from './fleet-servers.ts';
import { benchGatewayDir } from './gateway-dir.ts';
import { procStats } from './proc-stats.ts';
import { median } from './stats.ts';
import { tlsConnectionMemory } from './tls-memory.ts';

// Figure 2: an on-demand round over the whole fleet, and what one gateway process holds. The
// gateway runs alone in its process; the sim fleet in shard processes, every device its own TLS
// 1.3 connection, computing its own exporter and signing a real quote each round. The fleet grows
// step by step on one gateway; at each step: RSS per connected device (after onboarding, after a
// GC), then on-demand rounds timed inside the gateway from the first challenge to the last
// appraisal, with the CPU seconds of the gateway and of the fleet read from /proc.
//
// Side by side, in the same run: the same fleet, sending the same messages at the same sizes,
// against a plain aedes TLS broker and against mosquitto, each with a responder that does no
// attestation (fleet-servers.ts), at one size; the ratios say what attestation costs on top of
// the transport, and what our transport costs against a C broker.

export interface FleetRoundOptions {
  /** Fleet sizes our gateway is measured at, ascending. */
  readonly sizes: readonly number[];
  /** The size the peers are measured at (one of `sizes`); none when absent. */
  readonly peerSize?: number;
  readonly rounds: number;
  /** Devices per shard process. */
  readonly shardSize: number;
  readonly concurrency: number;
  /** Challenges issued per event-loop turn in a round. */
  readonly slice: number;
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
  appraisalP50Ms: number;
  appraisalP99Ms: number;
  earBytes?: number;
  cryptoThreads?: { configured: number; answering: number };
}

interface RoundRun extends RoundStats {
  /** The broker's process (for our gateway: everything, verifier included). */
  serverCpuS: number;
  /** The responder's process, when apart from the broker (mosquitto). */
  responderCpuS: number;
  fleetCpuS: number;
}

interface Step {
  readonly devices: number;
  /** The size asked for, when the descriptor limit made `devices` smaller. */
  readonly asked: number;
  readonly onboardS: number;
  readonly rssMb: number;
  readonly idleRssMb: number;
  readonly rssKbPerDevice: number;
  readonly heapKbPerDevice?: number;
  readonly externalKbPerDevice?: number;
  readonly peakRssMb: number;
  readonly fleetRssKbPerDevice: number;
  readonly rounds: readonly RoundRun[];
}

interface ServerStats {
  attested: number;
  mem?: NodeJS.MemoryUsage;
}

/** Descriptors a server process may open here: a connection is one. */
function descriptorLimit(): number {
  try {
    const hard = execFileSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim();
    return hard === 'unlimited' ? Number.POSITIVE_INFINITY : Number(hard);
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}
/** Descriptors a server needs besides its connections (listener, database, IPC, epoll, ...). */
const DESCRIPTOR_HEADROOM = 100;

const perDevice = (s: number, devices: number) => (s * 1000) / devices;
const cpuOf = (pid: number | undefined) => (pid === undefined ? 0 : procStats(pid).cpuS);

async function measureServer(
  kind: ServerKind,
  sizes: readonly number[],
  o: FleetRoundOptions,
  earBytes: number,
): Promise<Step[]> {
  const dir = mkdtempSync(join(tmpdir(), `vigil-bench-${kind}-`));
  const steps: Step[] = [];
  let server: FleetServer | undefined;
  const shards: Child[] = [];
  const log = (line: string) => o.log(`  [${kind}] ${line}`);
  try {
    server = await startFleetServer(kind, join(dir, 'server'), {
      earBytes,
      ...(o.gatewayNodeArgs && { gatewayNodeArgs: o.gatewayNodeArgs }),
    });
    const control = server.control;
    await control.call('gc');
    await new Promise((r) => setTimeout(r, 200));
    const base = procStats(server.brokerPid);
    const baseMem = (await control.call<ServerStats>('stats')).mem;
    log(`idle: RSS ${(base.rssKb / 1024).toFixed(1)} MB`);
    const limit = descriptorLimit() - DESCRIPTOR_HEADROOM;
    let connected = 0;
    for (const asked of sizes) {
      const size = Math.min(asked, limit);
      if (size <= connected) break;
      const t0 = performance.now();
      const adding: Promise<unknown>[] = [];
      while (connected < size) {
        const count = Math.min(o.shardSize, size - connected);
        const shard = await startChild('fleet-process.ts', []);
        shards.push(shard);
        adding.push(
          shard.call('start', {
            url: server.url,
            caPath: server.caPath,
            count,
            concurrency: o.concurrency,
            seedPrefix: `bench/${shards.length}`,
          }),
        );
        connected += count;
      }
      await Promise.all(adding);
      const onboardMs = performance.now() - t0;
      await control.call('gc');
      await new Promise((r) => setTimeout(r, 300));
      const after = procStats(server.brokerPid);
      const stats = await control.call<ServerStats>('stats');
      if (stats.attested !== size) throw new Error(`${stats.attested} of ${size} devices attested`);
      const rssKbPerDevice = (after.rssKb - base.rssKb) / size;
      // JS heap against the rest (TLS and socket buffers, OpenSSL objects, SQLite cache).
      const js =
        stats.mem && baseMem && server.responderPid === undefined
          ? {
              heapKbPerDevice: (stats.mem.heapUsed - baseMem.heapUsed) / 1024 / size,
              // external includes arrayBuffers (Node's Buffers): counted once.
              externalKbPerDevice: (stats.mem.external - baseMem.external) / 1024 / size,
            }
          : {};
      const fleetRssKb = shards.map((s) => procStats(s.pid).rssKb).reduce((a, b) => a + b, 0);
      log(
        `${size} devices onboarded in ${(onboardMs / 1000).toFixed(1)} s; RSS ${(after.rssKb / 1024).toFixed(0)} MB ` +
          `(${rssKbPerDevice.toFixed(1)} KB/device${js.heapKbPerDevice === undefined ? '' : `: JS heap ${js.heapKbPerDevice.toFixed(1)}, external ${js.externalKbPerDevice!.toFixed(1)}`}), ` +
          `sim RSS ${(fleetRssKb / size).toFixed(1)} KB/device`,
      );

      const rounds: RoundRun[] = [];
      for (let i = 0; i < o.rounds; i++) {
        const profile = kind === 'vigil' && o.profileDir !== undefined && i === o.rounds - 1;
        // The gateway and one fleet shard (a sample of the fleet's work).
        if (profile) await Promise.all([control.call('profileStart'), shards[0]!.call('profileStart')]);
        const s0 = cpuOf(server.brokerPid);
        const r0 = cpuOf(server.responderPid);
        const f0 = shards.reduce((a, sh) => a + cpuOf(sh.pid), 0);
        const r = await control.call<RoundStats>('round', { batchId: `bench-${size}-${i}`, slice: o.slice });
        const run: RoundRun = {
          ...r,
          serverCpuS: cpuOf(server.brokerPid) - s0,
          responderCpuS: cpuOf(server.responderPid) - r0,
          fleetCpuS: shards.reduce((a, sh) => a + cpuOf(sh.pid), 0) - f0,
        };
        if (profile) {
          mkdirSync(o.profileDir!, { recursive: true });
          const path = await control.call<string>('profileStop', {
            path: join(o.profileDir!, `round-${size}.cpuprofile`),
          });
          const fleetPath = await shards[0]!.call<string>('profileStop', {
            path: join(o.profileDir!, `round-${size}-fleet-shard.cpuprofile`),
          });
          log(`profiles of this round: ${path} (gateway), ${fleetPath} (one fleet shard)`);
        }
        rounds.push(run);
        const cpu = run.serverCpuS + run.responderCpuS;
        log(
          `round ${i + 1}: ${r.devices} answered in ${r.allAppraisedMs.toFixed(0)} ms (issue ${r.issuedMs.toFixed(0)} ms), ` +
            `server CPU ${cpu.toFixed(2)} s (${perDevice(cpu, r.devices).toFixed(3)} ms/device), ` +
            `sim fleet CPU ${run.fleetCpuS.toFixed(2)} s (${perDevice(run.fleetCpuS, r.devices).toFixed(3)} ms/device)` +
            (typeof r.appraisalP50Ms !== 'number'
              ? ''
              : `, appraisal p50 ${r.appraisalP50Ms.toFixed(3)} ms`) +
            `, failed ${r.failed}` +
            (r.cryptoThreads
              ? `, crypto threads ${r.cryptoThreads.answering}/${r.cryptoThreads.configured}`
              : ''),
        );
        // Let the fleet settle (results delivered) before the next round.
        await new Promise((res) => setTimeout(res, 300));
      }
      steps.push({
        devices: size,
        asked,
        onboardS: onboardMs / 1000,
        rssMb: after.rssKb / 1024,
        idleRssMb: base.rssKb / 1024,
        rssKbPerDevice,
        ...js,
        peakRssMb: procStats(server.brokerPid).hwmKb / 1024,
        fleetRssKbPerDevice: fleetRssKb / size,
        rounds,
      });
    }
    return steps;
  } finally {
    await Promise.allSettled(shards.map((s) => s.stop()));
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const cpuPerDevice = (r: RoundRun) => perDevice(r.serverCpuS + r.responderCpuS, r.devices);
const medianOf = (s: Step, f: (r: RoundRun) => number) => median(s.rounds.map(f));

function roundDetails(s: Step) {
  return {
    devices: s.devices,
    rounds: s.rounds.map((r) => ({
      allAppraisedMs: Math.round(r.allAppraisedMs),
      issuedMs: Math.round(r.issuedMs),
      serverCpuS: Number(r.serverCpuS.toFixed(2)),
      ...(r.responderCpuS > 0 && { responderCpuS: Number(r.responderCpuS.toFixed(2)) }),
      fleetCpuS: Number(r.fleetCpuS.toFixed(2)),
      failed: r.failed,
      ...(r.cryptoThreads && { cryptoThreads: r.cryptoThreads }),
    })),
    onboardS: Number(s.onboardS.toFixed(1)),
    bestS: Math.min(...s.rounds.map((r) => r.allAppraisedMs)) / 1000,
  };
}

function memoryDetails(s: Step) {
  return {
    devices: s.devices,
    rssMb: Number(s.rssMb.toFixed(1)),
    idleRssMb: Number(s.idleRssMb.toFixed(1)),
    ...(s.heapKbPerDevice !== undefined && {
      jsHeapKbPerDevice: Number(s.heapKbPerDevice.toFixed(1)),
      externalKbPerDevice: Number(s.externalKbPerDevice!.toFixed(1)),
    }),
  };
}

const GOAL_ROUND_SIZE = 10_000;
const GOAL_DEVICES = 20_000;

function vigilFigures(steps: readonly Step[]): Figure[] {
  const figures: Figure[] = [];
  for (const s of steps) {
    const n = s.devices;
    const ms = medianOf(s, (r) => r.allAppraisedMs);
    const name = `on-demand round, ${n} sim devices: all appraised`;
    const cpuName = `gateway CPU per device per on-demand round, ${n} devices`;
    const cpu = medianOf(s, cpuPerDevice);
    const cpuDetails = {
      devices: n,
      gatewayCpuS: Number(medianOf(s, (r) => r.serverCpuS).toFixed(2)),
      note: 'whole gateway process (all threads): TLS, MQTT, appraisal, result signing, store',
    };
    const memName = `gateway RSS per connected device, ${n} devices`;
    figures.push(
      n === GOAL_ROUND_SIZE
        ? atMost(name, ms / 1000, 's', 2.5, roundDetails(s))
        : info(name, ms / 1000, 's', roundDetails(s)),
      n === GOAL_ROUND_SIZE
        ? atMost(cpuName, cpu, 'ms', 0.25, cpuDetails)
        : info(cpuName, cpu, 'ms', cpuDetails),
      info(
        `sim fleet CPU per device per round, ${n} devices (same box)`,
        medianOf(s, (r) => perDevice(r.fleetCpuS, r.devices)),
        'ms',
        {
          devices: n,
          fleetRssKbPerDevice: Number(s.fleetRssKbPerDevice.toFixed(1)),
        },
      ),
      info(`gateway peak RSS, ${n} devices`, s.peakRssMb, 'MB', { devices: n }),
      atMost(memName, s.rssKbPerDevice, 'KB', 40, memoryDetails(s)),
    );
  }
  const last = steps.at(-1);
  const name = 'devices connected to one gateway process, all attested';
  if (last && last.devices < last.asked) {
    figures.push({
      ...unmeasured(
        name,
        'devices',
        `≥ ${GOAL_DEVICES}`,
        `the descriptor hard limit here (ulimit -Hn) lets a process hold ${last.devices} connections, not ${last.asked}: measured at ${last.devices}`,
      ),
      value: last.devices,
      rssKbPerDevice: Number(last.rssKbPerDevice.toFixed(1)),
    });
  } else if (last) {
    figures.push(
      atLeast(name, last.devices, 'devices', GOAL_DEVICES, {
        rssKbPerDevice: Number(last.rssKbPerDevice.toFixed(1)),
      }),
    );
  }
  return figures;
}

function peerFigures(kind: ServerKind, s: Step): Figure[] {
  const n = s.devices;
  const label = SERVER_LABEL[kind];
  const cpuDetails = {
    devices: n,
    brokerCpuMsPerDevice: Number(medianOf(s, (r) => perDevice(r.serverCpuS, r.devices)).toFixed(3)),
    ...(kind === 'mosquitto' && {
      responderCpuMsPerDevice: Number(medianOf(s, (r) => perDevice(r.responderCpuS, r.devices)).toFixed(3)),
    }),
  };
  return [
    info(
      `${label}: round, ${n} sim devices`,
      medianOf(s, (r) => r.allAppraisedMs) / 1000,
      's',
      roundDetails(s),
    ),
    info(`${label}: CPU per device per round`, medianOf(s, cpuPerDevice), 'ms', cpuDetails),
    info(`${label}: RSS per connected device, ${n} devices`, s.rssKbPerDevice, 'KB', memoryDetails(s)),
  ];
}

function ratioFigures(kind: ServerKind, ours: Step, peer: Step): Figure[] {
  const label = `vigil / ${kind}`;
  const ratio = (name: string, a: number, b: number, unit: string) =>
    info(`${label}: ${name}`, a / b, '×', {
      vigil: Number(a.toFixed(3)),
      [kind]: Number(b.toFixed(3)),
      of: unit,
      devices: ours.devices,
    });
  return [
    ratio(
      'round time',
      medianOf(ours, (r) => r.allAppraisedMs),
      medianOf(peer, (r) => r.allAppraisedMs),
      'ms',
    ),
    ratio('CPU per device per round', medianOf(ours, cpuPerDevice), medianOf(peer, cpuPerDevice), 'ms'),
    ratio('memory per connection', ours.rssKbPerDevice, peer.rssKbPerDevice, 'KB'),
  ];
}

export async function fleetRound(o: FleetRoundOptions): Promise<Figure[]> {
  const vigil = await measureServer('vigil', o.sizes, o, 0);
  const figures = vigilFigures(vigil);
  if (o.peerSize === undefined) return figures;
  const ours = vigil.find((s) => s.devices === o.peerSize);
  const earBytes = ours?.rounds.find((r) => r.earBytes)?.earBytes;
  if (!ours || !earBytes)
    throw new Error(`no round of ours at ${o.peerSize} devices to size the peers' messages`);
  // The floor under every Node broker: TLS 1.3 connections with nothing on top.
  const tlsDir = mkdtempSync(join(tmpdir(), 'vigil-bench-tls-'));
  try {
    const gw = benchGatewayDir(tlsDir, { host: '127.0.0.1', port: 8883 });
    const bare = await tlsConnectionMemory({
      keyPath: gw.keyPath,
      certPath: gw.certPath,
      caPath: gw.caPath,
      count: o.peerSize,
    });
    o.log(
      `  [node tls] ${bare.connections} connections: ${bare.rssKbPerConnection.toFixed(1)} KB/connection (JS heap ${bare.heapKbPerConnection.toFixed(1)})`,
    );
    figures.push(
      info(
        `Node TLS 1.3 alone (no MQTT): RSS per connection, ${bare.connections}`,
        bare.rssKbPerConnection,
        'KB',
        {
          jsHeapKbPerConnection: Number(bare.heapKbPerConnection.toFixed(1)),
        },
      ),
    );
  } finally {
    rmSync(tlsDir, { recursive: true, force: true });
  }
  for (const kind of ['aedes', 'mosquitto'] as const) {
    try {
      const [peer] = await measureServer(kind, [o.peerSize], o, earBytes);
      figures.push(...peerFigures(kind, peer!), ...ratioFigures(kind, ours, peer!));
    } catch (e) {
      o.log(`  [${kind}] failed: ${(e as Error).stack ?? e}`);
      figures.push(
        unmeasured(
          `${SERVER_LABEL[kind]}: round, ${o.peerSize} sim devices`,
          's',
          '',
          `failed: ${(e as Error).message}`,
        ),
      );
    }
  }
  return figures;
}
