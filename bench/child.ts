import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { client } from './ipc.ts';

// Starts a bench entry (gateway-process.ts, fleet-process.ts) as a separate Node process with an
// IPC channel, optionally inside a network namespace, with a raised file-descriptor limit (ten
// thousand TLS connections need ten thousand descriptors on each side).

export interface Child {
  readonly process: ChildProcess;
  readonly pid: number;
  call<T>(cmd: string, args?: unknown): Promise<T>;
  /** Asks the child to close, then kills it if it has not exited within 5 s. */
  stop(): Promise<void>;
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export async function startChild(
  script: string,
  args: readonly string[],
  opts: { netns?: string; nodeArgs?: readonly string[]; env?: NodeJS.ProcessEnv } = {},
): Promise<Child> {
  const path = fileURLToPath(new URL(script, import.meta.url));
  const node = [process.execPath, '--expose-gc', ...(opts.nodeArgs ?? []), '--import', 'tsx', path, ...args];
  const netns = opts.netns ? `ip netns exec ${quote(opts.netns)} ` : '';
  // exec keeps the PID: /proc/PID is the Node process itself, not the shell.
  const command = `ulimit -n 65536 2>/dev/null || ulimit -n 20000; exec ${netns}${node.map(quote).join(' ')}`;
  const child = spawn('sh', ['-c', command], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, ...opts.env },
    cwd: fileURLToPath(new URL('..', import.meta.url)),
  });
  const call = client(child);
  await new Promise<void>((resolve, reject) => {
    const onMessage = (m: { id: number }) => {
      if (m.id !== 0) return;
      child.off('message', onMessage);
      resolve();
    };
    child.on('message', onMessage);
    child.once('exit', (code, signal) =>
      reject(new Error(`${script} exited (${code ?? signal}) before it was ready`)),
    );
  });
  return {
    process: child,
    pid: child.pid!,
    call,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      call('close').catch(() => {});
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
