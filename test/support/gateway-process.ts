import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readRunFile } from '../../gateway/run-file.ts';
import { initGateway } from '../../gateway/setup/init.ts';
import { eventually } from './operator.ts';
import { freePort } from './ports.ts';

// A gateway as an operator runs it (`vigil-gateway start`, from source) in a child process, for
// tests that kill it the way a power cut or the OOM killer would: a directory on loopback ports,
// a start that waits until the gateway runs, and a SIGKILL.

const ROOT = new URL('../..', import.meta.url).pathname;

/** A gateway directory listening on 127.0.0.1 only, with `policy` as its policy.json. */
export async function gatewayDir(dir: string, policy: object): Promise<{ readonly port: number }> {
  const port = await freePort();
  initGateway({ dir, hosts: ['localhost'], mqttPort: port, apiPort: 0 });
  const file = join(dir, 'gateway.json');
  const json = JSON.parse(readFileSync(file, 'utf8'));
  json.mqtt.host = '127.0.0.1';
  json.api.host = '127.0.0.1';
  writeFileSync(file, JSON.stringify(json));
  writeFileSync(join(dir, 'policy.json'), JSON.stringify(policy));
  return { port };
}

export interface GatewayProcess {
  readonly child: ChildProcess;
  /** The operator API's base URL. */
  readonly api: string;
  /** SIGKILL, and the exit awaited; nothing if it has exited already. */
  kill(): Promise<void>;
}

/** `vigil-gateway start --dir DIR` in a child process; resolves once its run file names it. */
export async function startGatewayProcess(dir: string, port: number): Promise<GatewayProcess> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'gateway/cli.ts', 'start', '--dir', dir, '--port', String(port), '--api-port', '0'],
    { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const kill = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  };
  try {
    await eventually(
      () => {
        if (child.exitCode !== null) throw new Error(`gateway exited with ${child.exitCode}: ${stderr}`);
        return readRunFile(dir)?.pid === child.pid;
      },
      'the gateway runs',
      20_000,
    );
  } catch (e) {
    await kill();
    throw e;
  }
  return { child, api: `http://127.0.0.1:${readRunFile(dir)!.apiPort}`, kill };
}
