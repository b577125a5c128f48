import { execFile } from 'node:child_process';

// `vigil-gateway` run as an operator runs it: a child process against a gateway's directory and
// API, with its exit code and both outputs.

const ROOT = new URL('../..', import.meta.url).pathname;

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export function gatewayCli(
  args: readonly string[],
  target: { dir: string; apiPort: number },
): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [
        '--import',
        'tsx',
        'gateway/cli.ts',
        ...args,
        '--dir',
        target.dir,
        '--api',
        `http://127.0.0.1:${target.apiPort}`,
      ],
      { cwd: ROOT, env: { ...process.env, NO_COLOR: '1' }, timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
