import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { onProcessEnd } from './cleanup.ts';
import { freePort } from './ports.ts';
import { removeDir, tempDir } from './tmp.ts';

// A real HAProxy 2.6 (Debian `haproxy`) in front of test gateways: TCP pass-through (TLS ends at
// the gateway that appraises, so the exporter binds device and gateway), least connections, an
// HTTP health check on each gateway's health port, and the admin socket for drains.

export interface HaproxyServer {
  readonly name: string;
  /** The gateway's MQTT (TLS) port. */
  readonly port: number;
  /** Its health port (GET /health). */
  readonly healthPort: number;
}

export interface TestHaproxy {
  /** Where devices connect. */
  readonly port: number;
  readonly backend: string;
  /** One admin-socket command, e.g. `show servers state`; resolves with the answer. */
  admin(command: string): Promise<string>;
  /** Puts a server in maintenance and cuts its sessions: its devices reconnect elsewhere. */
  drain(server: string): Promise<void>;
  /** Takes a server out of maintenance. */
  ready(server: string): Promise<void>;
  /** `UP`, `DOWN`, `MAINT`... as the servers' state shows it. */
  status(server: string): Promise<string>;
  stop(): Promise<void>;
}

const BACKEND = 'gateways';

/** The configuration docs/scale.md shows, with this test's ports and paths. */
export function haproxyConfig(o: {
  readonly port: number;
  readonly adminSocket: string;
  readonly servers: readonly HaproxyServer[];
  readonly checkIntervalMs?: number;
}): string {
  const inter = o.checkIntervalMs ?? 300;
  return [
    'global',
    `  stats socket ${o.adminSocket} mode 600 level admin`,
    '  log stderr format raw local0 warning',
    'defaults',
    '  mode tcp',
    '  log global',
    '  timeout connect 2s',
    // MQTT connections live for days; keepalives keep them busy well inside this.
    '  timeout client 1h',
    '  timeout server 1h',
    '  option redispatch',
    '  retries 2',
    'frontend devices',
    `  bind 127.0.0.1:${o.port}`,
    `  default_backend ${BACKEND}`,
    `backend ${BACKEND}`,
    '  balance leastconn',
    '  option httpchk GET /health',
    '  http-check expect status 200',
    `  default-server inter ${inter} fall 2 rise 1`,
    ...o.servers.map((s) => `  server ${s.name} 127.0.0.1:${s.port} check port ${s.healthPort}`),
    '',
  ].join('\n');
}

export async function startHaproxy(servers: readonly HaproxyServer[]): Promise<TestHaproxy> {
  const dir = tempDir('haproxy-');
  const port = await freePort();
  const adminSocket = join(dir, 'admin.sock');
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(cfg, haproxyConfig({ port, adminSocket, servers }));
  let output = '';
  const child: ChildProcess = spawn('haproxy', ['-f', cfg, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    output = (output + d.toString()).slice(-20_000);
  });
  const forget = onProcessEnd(() => child.kill('SIGKILL'));

  const admin = (command: string) =>
    new Promise<string>((resolve, reject) => {
      const s = connect(adminSocket);
      let answer = '';
      s.once('connect', () => s.write(`${command}\n`));
      s.on('data', (d) => {
        answer += d.toString();
      });
      s.once('end', () => resolve(answer));
      s.once('error', reject);
    });

  const stop = async () => {
    forget();
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    removeDir(dir);
  };

  const until = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`haproxy exited with ${child.exitCode}: ${output}`);
    }
    const up = await admin('show info').then(
      (a) => a.includes('Name: HAProxy'),
      () => false,
    );
    if (up) break;
    if (Date.now() > until) {
      await stop();
      throw new Error(`haproxy did not open its admin socket within 10 s: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  const status = async (server: string) => {
    const answer = await admin(`show stat -1 4 -1 typed`);
    // Typed stats: lines like `S.3.1.17.status.1:MGP:str:UP`, the proxy and server names in
    // fields 0 and 1 of the same object (pxname, svname).
    const fields = new Map<string, Map<string, string>>();
    for (const line of answer.split('\n')) {
      const m = /^S\.(\d+)\.(\d+)\.\d+\.(\w+)\.\d+:[^:]*:[^:]*:(.*)$/.exec(line);
      if (!m) continue;
      const key = `${m[1]}.${m[2]}`;
      const f = fields.get(key) ?? new Map<string, string>();
      f.set(m[3]!, m[4]!);
      fields.set(key, f);
    }
    for (const f of fields.values())
      if (f.get('pxname') === BACKEND && f.get('svname') === server) return f.get('status') ?? 'unknown';
    throw new Error(`haproxy has no server ${server} in ${BACKEND}`);
  };

  return {
    port,
    backend: BACKEND,
    admin,
    async drain(server) {
      await admin(`set server ${BACKEND}/${server} state maint`);
      await admin(`shutdown sessions server ${BACKEND}/${server}`);
    },
    async ready(server) {
      await admin(`set server ${BACKEND}/${server} state ready`);
    },
    status,
    stop,
  };
}
