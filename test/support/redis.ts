import { type ChildProcess, spawn } from 'node:child_process';
import { connect } from 'node:net';
import { onProcessEnd } from './cleanup.ts';
import { freePort } from './ports.ts';
import { removeDir, tempDir } from './tmp.ts';

// A real Redis 7 (Debian `redis-server`) for tests: a child process on a free loopback port,
// nothing persisted (as a restart after a crash would leave it: every key gone). `stop()` and
// `start()` again on the same port are how tests take the control bus away and bring it back.

export interface TestRedis {
  readonly port: number;
  readonly url: string;
  readonly running: boolean;
  /** Starts it again (same port, empty) after stop(). */
  start(): Promise<void>;
  /** Stops the server; the directory stays for a later start(). */
  stop(): Promise<void>;
  /** Stops it for good and removes its directory. */
  close(): Promise<void>;
}

function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => s.write('PING\r\n'));
    s.once('data', (d) => {
      s.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
    s.once('error', () => resolve(false));
  });
}

export async function startRedis(): Promise<TestRedis> {
  const dir = tempDir('redis-');
  const port = await freePort();
  let child: ChildProcess | undefined;
  const kill = () => child?.kill('SIGKILL');
  const forget = onProcessEnd(kill);

  const start = async () => {
    let stderr = '';
    const c = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
        '--loglevel',
        'warning',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    c.stdout?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    c.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child = c;
    const until = Date.now() + 10_000;
    while (!(await answersPing(port))) {
      if (c.exitCode !== null) throw new Error(`redis-server exited with ${c.exitCode}: ${stderr}`);
      if (Date.now() > until) throw new Error(`redis-server did not answer within 10 s: ${stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const stop = async () => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    await exited;
  };

  try {
    await start();
  } catch (err) {
    kill();
    forget();
    removeDir(dir);
    throw err;
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get running() {
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    },
    start,
    stop,
    async close() {
      await stop();
      forget();
      removeDir(dir);
    },
  };
}
