import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { killOnExit } from './children.ts';
import { removeDir, tempDir } from './tmp.ts';

// A serial line for tests: socat joins two pseudo-terminals, one end for the agent's link and
// one for the MCU (emulator, or a test writing raw bytes). Stable symlinks in a temp dir name
// the ends, so a line that is unplugged (stop) and plugged back (start) keeps its paths, as a
// udev rule keeps a USB serial adapter's.

export interface PtyPair {
  /** The agent's end. */
  readonly agentPath: string;
  /** The MCU's end. */
  readonly mcuPath: string;
  /** Unplugs: kills socat, both ends vanish. */
  stop(): Promise<void>;
  /** Plugs back in, on the same paths. */
  start(): Promise<void>;
  /** Stops and removes the temp dir. */
  close(): Promise<void>;
}

async function launch(agentPath: string, mcuPath: string): Promise<ChildProcess> {
  // biome-ignore format: one address per line
  const child = killOnExit(spawn('socat', ['-d', '-d',
    `pty,raw,echo=0,link=${agentPath}`,
    `pty,raw,echo=0,link=${mcuPath}`],
    { stdio: ['ignore', 'ignore', 'pipe'] }));
  let err = '';
  let onEarlyExit = (_code: number | null): void => {};
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`socat did not join the two pseudo-terminals within 5 s: ${err}`));
    }, 5000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot start socat (${e.message}): apt-get install socat`));
    });
    onEarlyExit = (code: number | null) => {
      clearTimeout(timer);
      reject(new Error(`socat exited with ${code} before joining the pseudo-terminals: ${err}`));
    };
    child.once('exit', onEarlyExit);
    child.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
      // Printed once both ends exist and their links are made.
      if (err.includes('starting data transfer loop') && existsSync(agentPath) && existsSync(mcuPath)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  child.removeListener('exit', onEarlyExit);
  return child;
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  await exited;
}

/** A pair in a temp dir, or in `dir` (kept on close: the demo's data directory). */
export async function startPtyPair(options: { dir?: string } = {}): Promise<PtyPair> {
  if (options.dir) mkdirSync(options.dir, { recursive: true });
  const dir = options.dir ?? tempDir('pty');
  const agentPath = join(dir, 'agent');
  const mcuPath = join(dir, 'mcu');
  let child: ChildProcess | undefined = await launch(agentPath, mcuPath);
  const stop = async (): Promise<void> => {
    if (child) await kill(child);
    child = undefined;
  };
  return {
    agentPath,
    mcuPath,
    stop,
    async start() {
      if (child) throw new Error('the pty pair is already running: stop() it first');
      child = await launch(agentPath, mcuPath);
    },
    async close() {
      await stop();
      if (!options.dir) removeDir(dir);
    },
  };
}
