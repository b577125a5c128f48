import { type ChildProcess, spawn } from 'node:child_process';
import { connect } from 'node:net';

// A software TPM (swtpm) as a child process on loopback: for the demo fleet and the tests, in
// place of the discrete TPM a device has. Port P speaks the MS simulator framing (the `swtpm:`
// TCTI), P+1 is swtpm's own control channel.

export interface SwtpmProcess {
  /** `swtpm:host=127.0.0.1,port=P`, for `Tpm.open` and tpm2-tools. */
  readonly tcti: string;
  readonly port: number;
  readonly ctrlPort: number;
  readonly stateDir: string;
  /** Stops the process (SIGTERM, then SIGKILL after 3 s). The state directory stays. */
  stop(): Promise<void>;
  /** Stops and starts it again on the same state and ports: a TPM reset. */
  restart(): Promise<void>;
}

const live = new Set<ChildProcess>();
let exitHooked = false;

// Last resort: a swtpm must not outlive the process that started it, whatever way it ends.
function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.once('exit', () => {
    for (const child of live) child.kill('SIGKILL');
  });
}

// TPM2_GetRandom(8) in the simulator framing: any well-formed reply means swtpm serves commands.
const PROBE = Buffer.from('00000008' + '00' + '0000000c' + '80010000000c0000017b0008', 'hex');

function probe(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let got = Buffer.alloc(0);
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write(PROBE));
    socket.on('data', (chunk) => {
      got = Buffer.concat([got, chunk]);
      if (got.length >= 4 && got.length >= 8 + got.readUInt32BE(0)) done(true);
    });
  });
}

function launch(
  port: number,
  ctrlPort: number,
  stateDir: string,
): { child: ChildProcess; stderr: () => string } {
  // biome-ignore format: flag/value pairs
  const child = spawn('swtpm', ['socket', '--tpm2',
    '--server', `type=tcp,port=${port},bindaddr=127.0.0.1`,
    '--ctrl', `type=tcp,port=${ctrlPort},bindaddr=127.0.0.1`,
    '--tpmstate', `dir=${stateDir}`, '--flags', 'not-need-init,startup-clear'],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  child.on('error', (e) => {
    err += `spawn failed: ${e.message} (is swtpm installed? apt-get install swtpm swtpm-tools)`;
  });
  live.add(child);
  child.once('exit', () => live.delete(child));
  return { child, stderr: () => err };
}

async function waitReady(port: number, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null)
      throw new Error(`swtpm exited with ${child.exitCode} before serving: ${stderr()}`);
    if (await probe(port)) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`swtpm on port ${port} did not serve commands within 10 s: ${stderr()}`);
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

/** Starts swtpm on the given loopback ports with `stateDir` (created by the caller) and waits until it serves. */
export async function startSwtpmProcess(
  stateDir: string,
  port: number,
  ctrlPort: number,
): Promise<SwtpmProcess> {
  hookExit();
  let current = launch(port, ctrlPort, stateDir);
  const proc: SwtpmProcess = {
    tcti: `swtpm:host=127.0.0.1,port=${port}`,
    port,
    ctrlPort,
    stateDir,
    stop: () => kill(current.child),
    async restart() {
      await kill(current.child);
      current = launch(port, ctrlPort, stateDir);
      await waitReady(port, current.child, current.stderr);
    },
  };
  try {
    await waitReady(port, current.child, current.stderr);
  } catch (e) {
    await kill(current.child);
    throw e;
  }
  return proc;
}
