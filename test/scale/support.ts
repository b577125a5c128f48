import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { type Gateway, startGateway } from '../../gateway/gateway.ts';
import { initGateway } from '../../gateway/setup/init.ts';
import { onProcessEnd } from '../support/cleanup.ts';
import { settle } from '../support/operator.ts';
import { freePort } from '../support/ports.ts';
import { startPostgres, type TestPostgres } from '../support/postgres.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { simPolicy } from '../support/sim-devices.ts';
import { removeDir, tempDir } from '../support/tmp.ts';

// A fleet of gateways for the scale-out tests: one PostgreSQL database and one Redis shared by
// N gateway directories that share what a fleet shares (the CA devices pin, the operator token,
// the EAR key, the policy), each with its own id, ports and health port. Gateways run in this
// process (fast, for what needs no crash) or as child processes of the CLI (`kill -9` is real).

const ROOT = new URL('../..', import.meta.url).pathname;

export interface FleetDir {
  readonly name: string;
  readonly dir: string;
  readonly mqttPort: number;
  readonly apiPort: number;
  readonly healthPort: number;
}

export interface FleetEnv {
  readonly postgres: TestPostgres;
  readonly redis: TestRedis;
  readonly database: string;
  readonly dirs: readonly FleetDir[];
  readonly ca: Buffer;
  readonly token: string;
  close(): Promise<void>;
}

export interface FleetEnvOptions {
  readonly gateways: number;
  readonly rounds?: { periodicMs: number; deadlineMs: number };
  readonly timings?: { claimTtlMs: number; leaseMs: number; requestTtlMs: number };
  readonly logLevel?: string;
  /** policy.json of every gateway; default: open admission, sim devices allowed, `rounds`. */
  readonly policy?: object;
}

export const FAST_TIMINGS = { claimTtlMs: 1500, leaseMs: 1500, requestTtlMs: 20_000 };

export async function startFleetEnv(opts: FleetEnvOptions): Promise<FleetEnv> {
  const postgres = await startPostgres();
  const redis = await startRedis().catch(async (e) => {
    await postgres.stop();
    throw e;
  });
  const database = await postgres.createDatabase('fleet');
  const dirs: FleetDir[] = [];
  for (let i = 1; i <= opts.gateways; i++) {
    const dir = tempDir(`gw${i}-`);
    const first = dirs[0];
    // What every gateway of a fleet shares, copied before init keeps it.
    if (first)
      for (const f of ['ca.pem', 'ca.key', 'ear-key.pem', 'operator.token', 'policy.json'])
        copyFileSync(join(first.dir, f), join(dir, f));
    const [mqttPort, apiPort, healthPort] = [await freePort(), await freePort(), await freePort()];
    initGateway({
      dir,
      hosts: ['localhost'],
      mqttPort,
      apiPort,
      database,
      redis: redis.url,
      gatewayId: `gw${i}`,
      healthPort,
    });
    const json = JSON.parse(readFileSync(join(dir, 'gateway.json'), 'utf8'));
    json.mqtt.host = '127.0.0.1';
    json.health.host = '127.0.0.1';
    json.scale = opts.timings ?? FAST_TIMINGS;
    json.logLevel = opts.logLevel ?? 'info';
    writeFileSync(join(dir, 'gateway.json'), JSON.stringify(json, null, 2));
    if (!first)
      writeFileSync(
        join(dir, 'policy.json'),
        JSON.stringify(opts.policy ?? simPolicy(opts.rounds ?? { periodicMs: 60_000, deadlineMs: 3000 })),
      );
    dirs.push({ name: `gw${i}`, dir, mqttPort, apiPort, healthPort });
  }
  return {
    postgres,
    redis,
    database,
    dirs,
    ca: readFileSync(join(dirs[0]!.dir, 'ca.pem')),
    token: readFileSync(join(dirs[0]!.dir, 'operator.token'), 'utf8').trim(),
    async close() {
      await redis.close().catch(() => {});
      await postgres.stop().catch(() => {});
      for (const d of dirs) removeDir(d.dir);
    },
  };
}

/** A gateway of the fleet in this process; resolves once it admits device connections. */
export async function startInProcess(d: FleetDir): Promise<Gateway> {
  const gw = await startGateway({
    dir: d.dir,
    logger: pino({ level: process.env.VIGIL_TEST_LOG ?? 'silent' }),
  });
  // A fresh Redis makes the first gateway hold new connections off for one claim expiry.
  const until = Date.now() + 30_000;
  while (!gw.scale?.report().admitting) {
    if (Date.now() > until) {
      await gw.close();
      throw new Error(`${d.name} does not admit connections: ${JSON.stringify(gw.scale?.report())}`);
    }
    await settle(50);
  }
  return gw;
}

/** A gateway of the fleet as a child process of the CLI; its log goes to DIR/gateway.log. */
export interface GatewayProcess {
  readonly d: FleetDir;
  readonly child: ChildProcess;
  /** Its log so far (pino JSON lines). */
  log(): string;
  /** Ends it with this signal and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export async function health(
  port: number,
): Promise<{ status: number; body: Record<string, unknown> } | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2000) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  } catch {
    return undefined;
  }
}

export async function spawnGateway(d: FleetDir): Promise<GatewayProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'gateway/cli.ts', 'start', '--dir', d.dir], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const keep = (b: Buffer) => {
    out = (out + b.toString()).slice(-400_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const p: GatewayProcess = {
    d,
    child,
    log: () => out,
    async kill(signal = 'SIGKILL') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill(signal);
      await exited;
    },
  };
  const forget = onProcessEnd(() => child.kill('SIGKILL'));
  child.once('exit', forget);
  const until = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`${d.name} exited with ${child.exitCode}:\n${out.slice(-3000)}`);
    if ((await health(d.healthPort))?.status === 200) return p;
    if (Date.now() > until) {
      await p.kill();
      throw new Error(`${d.name} did not report healthy within 30 s:\n${out.slice(-3000)}`);
    }
    await settle(100);
  }
}

/** The operator API of a gateway of the fleet. */
export async function api<T>(
  d: FleetDir,
  token: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${d.apiPort}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const json = (await res.json()) as T;
  if (!res.ok) throw new Error(`${d.name} ${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}
