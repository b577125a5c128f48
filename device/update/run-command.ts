import { spawn } from 'node:child_process';

// Runs a configured command (restart, health probe, operation handler): an argument vector, no
// shell, a timeout after which it is killed, and the tail of its output kept for the report.

export interface CommandResult {
  readonly ok: boolean;
  /** Exit code, signal or timeout, with the end of stderr: what a report's detail says. */
  readonly detail: string;
}

const TAIL = 400;

export function runCommand(
  argv: readonly string[],
  opts: { readonly timeoutMs: number; readonly env?: NodeJS.ProcessEnv; readonly input?: Uint8Array },
): Promise<CommandResult> {
  return new Promise((resolve) => {
    const [cmd, ...args] = argv as [string, ...string[]];
    const child = spawn(cmd, args, {
      env: { ...process.env, ...opts.env },
      stdio: [opts.input ? 'pipe' : 'ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    let timedOut = false;
    child.stderr!.on('data', (b: Buffer) => {
      stderr = (stderr + b.toString('utf8')).slice(-TAIL);
    });
    if (opts.input) child.stdin!.end(opts.input);
    // A handler that ignores its stdin must not fail the run.
    child.stdin?.on('error', () => {});
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs);
    const tail = () => (stderr.trim() ? `: ${stderr.trim()}` : '');
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ ok: false, detail: `${cmd} could not be run (${e.message})` });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut)
        resolve({ ok: false, detail: `${cmd} did not finish within ${opts.timeoutMs} ms${tail()}` });
      else if (code === 0) resolve({ ok: true, detail: `${cmd} exited 0` });
      else
        resolve({
          ok: false,
          detail: `${cmd} ${signal ? `was killed by ${signal}` : `exited ${code}`}${tail()}`,
        });
    });
  });
}
