import { execFile } from 'node:child_process';

// A command run to completion as a child process, for tests of what an operator types: the
// gateway CLI, a generated shell script. Never throws; the exit code tells.

export interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

const ROOT = new URL('../..', import.meta.url).pathname;

export function run(file: string, args: readonly string[], timeoutMs = 120_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { cwd: ROOT, timeout: timeoutMs, env: { ...process.env, NO_COLOR: '1' } },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
    );
  });
}

/** `vigil-gateway ARGS` from source. */
export const gatewayCli = (args: readonly string[]): Promise<Run> =>
  run(process.execPath, ['--import', 'tsx', 'gateway/cli.ts', ...args]);

/** `vigil-gateway ARGS` as an operator runs it against a running gateway: its directory and API. */
export const gatewayCliAt = (
  args: readonly string[],
  target: { dir: string; apiPort: number },
): Promise<Run> => gatewayCli([...args, '--dir', target.dir, '--api', `http://127.0.0.1:${target.apiPort}`]);
