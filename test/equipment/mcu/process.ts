import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { killOnExit } from '../../support/children.ts';

// The MCU emulator as a child process (main.ts), for tests and the demo: started on the MCU's
// end of a serial line, stopped by SIGTERM, killed at the latest when this process exits.

export interface McuEmulatorProcess {
  /** Hex SHA-256 of the identity key: what an operator admits. */
  readonly identity: string;
  /** Hex SHA-256 of the firmware image: a reference value for its model. */
  readonly firmware: string;
  readonly model: string;
  readonly child: ChildProcess;
  /** Resolves with the exit code once the process has ended, however it ended. */
  readonly exited: Promise<number | null>;
  stop(): Promise<void>;
}

export interface McuEmulatorProcessOptions {
  readonly pty: string;
  readonly secretHex: string;
  readonly firmwareFile: string;
  readonly model?: string;
  readonly delayMs?: number;
}

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));

/** The arguments main.ts takes for these options. */
export function emulatorArgs(o: McuEmulatorProcessOptions): string[] {
  return [
    '--pty',
    o.pty,
    '--secret',
    o.secretHex,
    '--firmware',
    o.firmwareFile,
    ...(o.model !== undefined ? ['--model', o.model] : []),
    ...(o.delayMs !== undefined ? ['--delay-ms', String(o.delayMs)] : []),
  ];
}

/** Runs main.ts with raw arguments: for testing its refusals. */
export function runEmulatorMain(args: readonly string[]): ChildProcess {
  return killOnExit(
    spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }),
  );
}

export async function spawnMcuEmulator(o: McuEmulatorProcessOptions): Promise<McuEmulatorProcess> {
  const child = runEmulatorMain(emulatorArgs(o));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const ready = await new Promise<{ identity: string; firmware: string; model: string }>(
    (resolve, reject) => {
      let out = '';
      const timer = setTimeout(
        () => reject(new Error(`the MCU emulator did not start within 20 s: ${stderr}`)),
        20_000,
      );
      child.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        const line = out.split('\n')[0];
        if (out.includes('\n') && line) {
          clearTimeout(timer);
          resolve(JSON.parse(line) as { identity: string; firmware: string; model: string });
        }
      });
      void exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`the MCU emulator exited with ${code} before it was ready: ${stderr}`));
      });
    },
  );
  return {
    ...ready,
    child,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
