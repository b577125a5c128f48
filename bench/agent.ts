import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { initAgent } from '../device/init.ts';
import { freePortPair } from '../firmware-shims/swtpm/free-ports.ts';
import { startSwtpmProcess } from '../firmware-shims/swtpm/swtpm-process.ts';
import { startGateway } from '../gateway/gateway.ts';
import type { RoundRecord } from '../gateway/model.ts';
import { encodeMessage } from '../shared/protocol/index.ts';
import { manifestDigest, parseManifest } from '../shared/protocol/software-manifest.ts';
import { SimDevice } from '../test/equipment/sim/sim-device.ts';
import { startByteProxy } from './byte-proxy.ts';
import { atMost, type Figure, info } from './figure.ts';
import { benchGatewayDir } from './gateway-dir.ts';
import { freePort } from './ports.ts';
import { procStats } from './proc-stats.ts';
import { median } from './stats.ts';

// Figures 4 and 5: the real agent, built (`npm run build`, the JS production runs), as its own
// process on swtpm, connected through a byte-counting relay to a gateway in this process.
// 4: its RSS after connecting and attesting once; its CPU per round (the TPM's work is swtpm's
//    CPU, in another process, so the agent's CPU is exactly the overhead beyond the TPM).
// 5: TLS bytes both ways per periodic round at steady state (software log unchanged, so the round
//    asks for no entries), and the MQTT payloads of such a round, from a sim device beside it.

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

/** Builds the JS; returns the command that runs the agent CLI, and what it is. */
function agentCommand(log: (l: string) => void): { argv: string[]; built: boolean } {
  try {
    execFileSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    if (existsSync(join(ROOT, 'dist/device/cli.js')))
      return { argv: [process.execPath, ...unitNodeFlags(), join(ROOT, 'dist/device/cli.js')], built: true };
  } catch (e) {
    log(
      `  npm run build failed (${String((e as { stderr?: Buffer }).stderr ?? e).split('\n')[0]}); running the agent through tsx`,
    );
  }
  return { argv: [process.execPath, '--import', 'tsx', join(ROOT, 'device/cli.ts')], built: false };
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
    const cmd = agentCommand(o.log);
    // The release the agent will report, exactly as it measures itself, registered as a reference.
    const manifest = execFileSync(cmd.argv[0]!, [...cmd.argv.slice(1), 'manifest', '--dir', agentDir], {
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
    const first = nextSettled(init.deviceId, 30_000);
    const child: ChildProcess = spawn(
      cmd.argv[0]!,
      [...cmd.argv.slice(1), 'run', '--dir', agentDir, '--log-level', 'warn'],
      {
        stdio: ['ignore', 'ignore', 'inherit'],
      },
    );
    cleanup.unshift(
      () =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
          setTimeout(() => child.kill('SIGKILL'), 3000).unref();
        }),
    );
    const onboard = await first;
    if (onboard.status !== 'affirming')
      throw new Error(`agent onboarding: ${onboard.codes.join(',')} ${onboard.detail}`);
    await new Promise((r) => setTimeout(r, 500));
    const rss = procStats(child.pid!);
    o.log(
      `  agent (${cmd.built ? 'built JS' : 'tsx'}) RSS after onboarding: ${(rss.rssKb / 1024).toFixed(1)} MB`,
    );

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

    // Side by side: the same agent, same TPM and gateway, on plain `node` without the unit's flags.
    let plainRssMb: number | undefined;
    if (cmd.built) {
      await new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      });
      const again = nextSettled(init.deviceId, 30_000);
      // biome-ignore format: argv
      const plain = spawn(process.execPath, [join(ROOT, 'dist/device/cli.js'), 'run', '--dir', agentDir, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'inherit'] });
      cleanup.unshift(
        () =>
          new Promise<void>((resolve) => {
            if (plain.exitCode !== null) return resolve();
            plain.once('exit', () => resolve());
            plain.kill('SIGKILL');
          }),
      );
      await again;
      await new Promise((r) => setTimeout(r, 500));
      plainRssMb = procStats(plain.pid!).rssKb / 1024;
      o.log(`  agent on plain node (no V8 flags) RSS after onboarding: ${plainRssMb.toFixed(1)} MB`);
    }

    // MQTT payload sizes of the same kind of round, from a sim device on the same gateway.
    const sim = SimDevice.create({ swPcr: 14 });
    const sizes = { challenge: 0, evidence: 0, result: 0 };
    sim.on('challenge', (c) => {
      sizes.challenge = encodeMessage(c).length;
    });
    sim.on('evidence', (e) => {
      sizes.evidence = encodeMessage(e).length;
    });
    sim.on('result', (r) => {
      sizes.result = encodeMessage(r).length;
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
    const payload = sizes.challenge + sizes.evidence + sizes.result;

    return [
      atMost('agent resident memory after connecting and first round', rss.rssKb / 1024, 'MB', 60, {
        runtime: cmd.built
          ? `node ${unitNodeFlags().join(' ')} dist (built JS, as the systemd unit runs it)`
          : 'tsx',
        afterRoundsMb: Number((rssAfter.rssKb / 1024).toFixed(1)),
        peakMb: Number((rssAfter.hwmKb / 1024).toFixed(1)),
      }),
      ...(plainRssMb === undefined
        ? []
        : [
            info(
              "agent resident memory, plain node without the unit's V8 flags",
              Number(plainRssMb.toFixed(1)),
              'MB',
              {},
            ),
          ]),
      atMost('agent CPU per round beyond the TPM', cpuPerRoundMs, 'ms', 5, {
        rounds: o.rounds,
        roundWallMsMedian: Number(median(wall).toFixed(1)),
        note: 'agent process CPU (user+sys) per round; the TPM work runs in swtpm',
      }),
      atMost('bytes on the wire per periodic round (TLS, both ways)', median(bytes), 'bytes', 600, {
        rounds: bytes.length,
        upBytes: median(up),
        downBytes: median(bytes) - median(up),
        mqttPayloads: { ...sizes, total: payload },
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
