import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { initAgent } from '../device/init.ts';
import { freePortPair } from '../firmware-shims/swtpm/free-ports.ts';
import { startSwtpmProcess } from '../firmware-shims/swtpm/swtpm-process.ts';
import { startGateway } from '../gateway/gateway.ts';
import type { RoundRecord } from '../gateway/model.ts';
import { bundleAgent, writeAgentPackageJson } from '../scripts/package/bundle.ts';
import { encodeMessage } from '../shared/protocol/index.ts';
import { manifestDigest, parseManifest } from '../shared/protocol/software-manifest.ts';
import { SimDevice } from '../test/equipment/sim/sim-device.ts';
import { startByteProxy } from './byte-proxy.ts';
import { proposals, type RoundPayloads, roundBreakdown } from './bytes.ts';
import { atMost, type Figure, info } from './figure.ts';
import { benchGatewayDir } from './gateway-dir.ts';
import { freePort } from './ports.ts';
import { procStats } from './proc-stats.ts';
import { median } from './stats.ts';

// Figures 4 and 5: the real agent as it ships (the esbuild bundle of scripts/package, run with the
// V8 flags of its systemd unit), as its own process on swtpm, connected through a byte-counting
// relay to a gateway in this process.
// 4: its RSS after connecting and attesting once; its CPU per round (the TPM's work is swtpm's
//    CPU, in another process, so the agent's CPU is exactly the overhead beyond the TPM). Side by
//    side: the same bundle on plain `node`, and Node itself idle with the unit's flags (the floor
//    any agent on Node starts from); a diagnostic report of the agent says what its memory is.
// 5: TLS bytes both ways per periodic round at steady state (software log unchanged, so the round
//    asks for no entries), and the MQTT payloads of such a round, from a sim device beside it,
//    broken down by message and field (bytes.ts).

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * The V8 flags the agent runs with in production, read from the systemd unit that ships them, so
 * the figure is the agent as deployed.
 */
export function unitNodeFlags(): string[] {
  const unit = readFileSync(join(ROOT, 'scripts/package/files/vigil-agent.service'), 'utf8');
  const exec = /^ExecStart=\S*node((?:\s+--\S+)*)\s/m.exec(unit);
  return exec?.[1]?.trim().split(/\s+/).filter(Boolean) ?? [];
}

/**
 * The environment the unit gives the agent: systemd's own and nothing of the shell's (this
 * machine sets NODE_EXTRA_CA_CERTS, say, which would load ~140 certificates into every TLS
 * context the agent makes).
 */
const UNIT_ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' };

/** Bundles the agent as the package ships it; returns the bundle file. */
async function agentBundle(dir: string): Promise<string> {
  const b = await bundleAgent(ROOT, dir);
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  writeAgentPackageJson(dir, version);
  return b.file;
}

/** RSS of a process once it has idled a moment. */
async function settledRssMb(pid: number, ms = 500): Promise<number> {
  await new Promise((r) => setTimeout(r, ms));
  return procStats(pid).rssKb / 1024;
}

/** Node itself, idle, with the given flags: what any agent on Node starts from. */
async function idleNodeRssMb(flags: readonly string[]): Promise<number> {
  const child = spawn(process.execPath, [...flags, '-e', 'setInterval(() => {}, 1e9)'], {
    stdio: 'ignore',
    env: UNIT_ENV,
  });
  try {
    return await settledRssMb(child.pid!, 800);
  } finally {
    child.kill('SIGKILL');
  }
}

interface DiagnosticReport {
  javascriptHeap: {
    totalMemory: number;
    usedMemory: number;
    heapSpaces: Record<string, { memorySize: number; used: number }>;
  };
  resourceUsage: { rss?: number };
  sharedObjects: string[];
}

/** The agent's own account of its memory (node --report-on-signal), taken after onboarding. */
async function agentReport(pid: number, dir: string): Promise<DiagnosticReport | undefined> {
  process.kill(pid, 'SIGUSR2');
  for (let i = 0; i < 50; i++) {
    const file = readdirSync(dir).find((f) => f.endsWith('.json'));
    if (file) {
      try {
        return JSON.parse(readFileSync(join(dir, file), 'utf8')) as DiagnosticReport;
      } catch {
        // still being written
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return undefined;
}

export async function agentFigures(o: { rounds: number; log: (l: string) => void }): Promise<Figure[]> {
  const tmp = mkdtempSync(join(tmpdir(), 'vigil-bench-agent-'));
  const cleanup: (() => Promise<unknown> | unknown)[] = [() => rmSync(tmp, { recursive: true, force: true })];
  try {
    const gwPort = await freePort();
    const gwDir = join(tmp, 'gw');
    let gw = benchGatewayDir(gwDir, { host: '127.0.0.1', port: gwPort });
    const proxy = await startByteProxy({ host: '127.0.0.1', port: gwPort });
    cleanup.unshift(() => proxy.close());
    const [tpmPort, ctrl] = await freePortPair();
    mkdirSync(join(tmp, 'tpm'));
    const swtpm = await startSwtpmProcess(join(tmp, 'tpm'), tpmPort, ctrl);
    cleanup.unshift(() => swtpm.stop());
    const agentDir = join(tmp, 'agent');
    const init = await initAgent({
      dir: agentDir,
      gateway: `mqtts://localhost:${proxy.port}`,
      ca: gw.caPath,
      tpm: swtpm.tcti,
      ek: 'ecc',
      logs: { ima: join(tmp, 'no-ima'), boot: join(tmp, 'no-boot') },
    });
    const bundle = await agentBundle(join(tmp, 'bundle'));
    const unit = [...unitNodeFlags(), bundle];
    // The release the agent will report, exactly as it measures itself, registered as a reference.
    const manifest = execFileSync(process.execPath, [...unit, 'manifest', '--dir', agentDir], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const m = parseManifest(manifest);
    gw = benchGatewayDir(gwDir, {
      host: '127.0.0.1',
      port: gwPort,
      software: [
        { name: m.name, version: m.version, digest: Buffer.from(manifestDigest(manifest)).toString('hex') },
      ],
    });
    const settled = new Map<string, (r: RoundRecord) => void>();
    const gateway = await startGateway({
      dir: gw.dir,
      logger: pino({ level: 'error' }),
      observe: {
        roundSettled(r) {
          settled.get(r.deviceId)?.(r);
        },
      },
    });
    cleanup.unshift(() => gateway.close());
    const nextSettled = (id: string, timeoutMs = 15_000) =>
      new Promise<RoundRecord>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no round settled for ${id}`)), timeoutMs);
        settled.set(id, (r) => {
          clearTimeout(timer);
          settled.delete(id);
          resolve(r);
        });
      });
    /** Runs the agent with `nodeArgs` until its onboarding round settled; stopped at cleanup. */
    const startAgent = async (nodeArgs: readonly string[]): Promise<ChildProcess> => {
      const first = nextSettled(init.deviceId, 30_000);
      // biome-ignore format: argv
      const child = spawn(process.execPath, [...nodeArgs, bundle, 'run', '--dir', agentDir, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'inherit'], env: UNIT_ENV });
      const stop = () =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
          setTimeout(() => child.kill('SIGKILL'), 3000).unref();
        });
      cleanup.unshift(stop);
      const onboard = await first;
      if (onboard.status !== 'affirming')
        throw new Error(`agent onboarding: ${onboard.codes.join(',')} ${onboard.detail}`);
      return child;
    };
    const stopAgent = (child: ChildProcess) =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      });

    const child = await startAgent(unitNodeFlags());
    const rssMb = await settledRssMb(child.pid!);
    o.log(`  agent (bundle, unit flags) RSS after onboarding: ${rssMb.toFixed(1)} MB`);

    const session = gateway.connections.of(init.deviceId).at(-1)!;
    const round = async () => {
      const done = nextSettled(init.deviceId);
      gateway.attestation.start(session, 'periodic');
      const r = await done;
      // The result is written right after the round settles; give it time to reach the agent.
      await new Promise((res) => setTimeout(res, 50));
      return r;
    };
    await round(); // the first periodic round of the connection: from here on, steady state
    const bytes: number[] = [];
    const up: number[] = [];
    const wall: number[] = [];
    const cpu0 = procStats(child.pid!).cpuS;
    for (let i = 0; i < o.rounds; i++) {
      const u0 = proxy.up();
      const d0 = proxy.down();
      const t0 = performance.now();
      const r = await round();
      wall.push(performance.now() - t0 - 50);
      if (r.status !== 'affirming') throw new Error(`agent round: ${r.codes.join(',')}`);
      up.push(proxy.up() - u0);
      bytes.push(proxy.up() - u0 + proxy.down() - d0);
    }
    const cpuPerRoundMs = ((procStats(child.pid!).cpuS - cpu0) * 1000) / o.rounds;
    const rssAfter = procStats(child.pid!);
    await stopAgent(child);

    // Side by side: the same bundle on plain `node`, and the unit's agent with a diagnostic report
    // of where its memory is; and Node itself, idle, with the unit's flags.
    const plain = await startAgent([]);
    const plainRssMb = await settledRssMb(plain.pid!);
    await stopAgent(plain);
    const reports = join(tmp, 'reports');
    mkdirSync(reports);
    const reporting = await startAgent([
      ...unitNodeFlags(),
      '--report-on-signal',
      '--report-signal=SIGUSR2',
      `--report-directory=${reports}`,
    ]);
    await settledRssMb(reporting.pid!);
    const report = await agentReport(reporting.pid!, reports);
    await stopAgent(reporting);
    const nodeFloorMb = await idleNodeRssMb(unitNodeFlags());
    o.log(
      `  same bundle on plain node: ${plainRssMb.toFixed(1)} MB; idle node with the unit's flags: ${nodeFloorMb.toFixed(1)} MB`,
    );
    const mb = (b: number) => Number((b / 2 ** 20).toFixed(1));
    const heap = report && {
      v8HeapCommittedMb: mb(report.javascriptHeap.totalMemory),
      v8HeapUsedMb: mb(report.javascriptHeap.usedMemory),
      spacesUsedMb: Object.fromEntries(
        Object.entries(report.javascriptHeap.heapSpaces).map(([k, v]) => [k, mb(v.used)]),
      ),
      sharedObjects: report.sharedObjects.length,
    };

    // The payloads of the same kind of round, from a sim device on the same gateway.
    const sim = SimDevice.create({ swPcr: 14 });
    const payloads: RoundPayloads = {
      deviceId: sim.id,
      challenge: new Uint8Array(),
      evidence: new Uint8Array(),
      result: new Uint8Array(),
    };
    sim.on('challenge', (c) => {
      payloads.challenge = encodeMessage(c);
    });
    sim.on('evidence', (e) => {
      payloads.evidence = encodeMessage(e);
    });
    sim.on('result', (r) => {
      payloads.result = encodeMessage(r);
    });
    const simFirst = sim.nextResult();
    await sim.connect(`mqtts://localhost:${gateway.mqttPort}`, readFileSync(gw.caPath));
    cleanup.unshift(() => sim.close());
    await simFirst;
    const simSession = gateway.connections.of(sim.id).at(-1)!;
    for (let i = 0; i < 2; i++) {
      const next = sim.nextResult();
      gateway.attestation.start(simSession, 'periodic');
      await next;
    }
    const sizes = {
      challenge: payloads.challenge.length,
      evidence: payloads.evidence.length,
      result: payloads.result.length,
    };
    const payload = sizes.challenge + sizes.evidence + sizes.result;
    const breakdown = roundBreakdown(payloads);
    const beyond = proposals(payloads);
    o.log(
      `  payloads: challenge ${sizes.challenge}, evidence ${sizes.evidence} (body ${breakdown.evidence.fields.body}), result ${sizes.result} (ear ${breakdown.result.fields.ear})`,
    );

    return [
      atMost('agent resident memory after connecting and first round', rssMb, 'MB', 50, {
        runtime: `node ${unitNodeFlags().join(' ')} vigil-agent.mjs (the bundle, as the systemd unit runs it)`,
        afterRoundsMb: Number((rssAfter.rssKb / 1024).toFixed(1)),
        peakMb: Number((rssAfter.hwmKb / 1024).toFixed(1)),
        ...(heap && { report: heap }),
      }),
      info('agent resident memory, the same bundle on plain node (no unit flags)', plainRssMb, 'MB', {}),
      info("Node itself, idle, with the unit's flags (the floor)", nodeFloorMb, 'MB', {}),
      atMost('agent CPU per round beyond the TPM', cpuPerRoundMs, 'ms', 3, {
        rounds: o.rounds,
        roundWallMsMedian: Number(median(wall).toFixed(1)),
        note: 'agent process CPU (user+sys) per round; the TPM work runs in swtpm',
      }),
      atMost('bytes on the wire per periodic round (TLS, both ways)', median(bytes), 'bytes', 600, {
        rounds: bytes.length,
        upBytes: median(up),
        downBytes: median(bytes) - median(up),
        mqttPayloads: { ...sizes, total: payload },
        breakdown,
        beyondProtocol: beyond,
      }),
      info('MQTT payload per periodic round (challenge + evidence + result)', payload, 'bytes', sizes),
    ];
  } finally {
    for (const c of cleanup)
      await Promise.resolve()
        .then(c)
        .catch(() => {});
  }
}
