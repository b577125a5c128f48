import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';

// Side by side (figure 2): mosquitto (Debian `mosquitto`), started by the bench on a free loopback
// port with its own configuration in the bench's temp dir: TLS 1.3 only, the gateway's key and
// certificate, anonymous clients, no persistence, no queue limits (the bench sends QoS 0 to
// connected clients only). Its defaults otherwise, as an operator would run it.

export interface Mosquitto {
  readonly pid: number;
  readonly port: number;
  stop(): Promise<void>;
}

export async function startMosquitto(o: {
  dir: string;
  port: number;
  keyPath: string;
  certPath: string;
}): Promise<Mosquitto> {
  const conf = join(o.dir, 'mosquitto.conf');
  writeFileSync(
    conf,
    [
      'per_listener_settings false',
      'allow_anonymous true',
      'persistence false',
      // Run as the user that started it (root here), so it can read the key in the temp dir.
      'user root',
      // Every device that leaves logs an OpenSSL "unexpected eof" otherwise.
      'log_dest none',
      'max_queued_messages 0',
      `listener ${o.port} 127.0.0.1`,
      `certfile ${o.certPath}`,
      `keyfile ${o.keyPath}`,
      'tls_version tlsv1.3',
      '',
    ].join('\n'),
  );
  // The same raised descriptor limit as the bench's Node children.
  const child: ChildProcess = spawn(
    'sh',
    ['-c', `ulimit -n 65536 2>/dev/null || ulimit -n $(ulimit -Hn); exec mosquitto -c '${conf}'`],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 5000;
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`mosquitto exited (${child.exitCode}) at start: see its stderr`);
    if (await listening(o.port)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`mosquitto did not listen on 127.0.0.1:${o.port} within 5 s`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    pid: child.pid!,
    port: o.port,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
