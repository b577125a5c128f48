import { fork } from 'node:child_process';
import { constants } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { procStats } from './proc-stats.ts';

// Figure 2's floor: what Node's TLS 1.3 costs per connection with nothing on top (no MQTT, no
// broker), in a server process of its own configured as the gateway's TLS (same key and
// certificate, TLS 1.3 only, no tickets), each connection having exchanged one record each way.
// Run as a module (tlsConnectionMemory) or as the server child (`tls-memory.ts KEY CERT`).

export interface TlsMemory {
  readonly connections: number;
  readonly rssKbPerConnection: number;
  readonly heapKbPerConnection: number;
}

interface ServerReport {
  port?: number;
  connections?: number;
  rssKb?: number;
  heapUsed?: number;
}

export async function tlsConnectionMemory(o: {
  keyPath: string;
  certPath: string;
  caPath: string;
  count: number;
}): Promise<TlsMemory> {
  const server = fork(new URL(import.meta.url), [o.keyPath, o.certPath], {
    execArgv: ['--expose-gc', '--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const next = () =>
    new Promise<ServerReport>((resolve) => server.once('message', (m) => resolve(m as ServerReport)));
  const sockets: tls.TLSSocket[] = [];
  try {
    const { port } = await next();
    server.send('measure');
    const idle = await next();
    const ca = readFileSync(o.caPath);
    const context = tls.createSecureContext({ ca, minVersion: 'TLSv1.3' });
    let opened = 0;
    const lane = async () => {
      while (opened < o.count) {
        opened++;
        await new Promise<void>((resolve, reject) => {
          const s = tls.connect(
            { host: '127.0.0.1', port: port!, servername: 'localhost', secureContext: context },
            () => s.write(Buffer.alloc(300, 1)),
          );
          s.once('data', () => resolve());
          s.once('error', reject);
          sockets.push(s);
        });
      }
    };
    await Promise.all(Array.from({ length: 32 }, lane));
    server.send('measure');
    const loaded = await next();
    if (loaded.connections !== o.count)
      throw new Error(`bare TLS server holds ${loaded.connections} of ${o.count} connections`);
    return {
      connections: o.count,
      rssKbPerConnection: (loaded.rssKb! - idle.rssKb!) / o.count,
      heapKbPerConnection: (loaded.heapUsed! - idle.heapUsed!) / 1024 / o.count,
    };
  } finally {
    for (const s of sockets) s.destroy();
    server.kill('SIGKILL');
  }
}

// The server child: echoes each record, reports its memory (after a GC) when asked.
if (process.argv[1] && import.meta.url.endsWith(process.argv[1]) && process.send) {
  const [keyPath, certPath] = process.argv.slice(2);
  let connections = 0;
  const srv = tls.createServer(
    {
      key: readFileSync(keyPath!),
      cert: readFileSync(certPath!),
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      secureOptions: constants.SSL_OP_NO_TICKET,
    },
    (s) => {
      connections++;
      s.on('data', (d) => s.write(d));
      s.on('error', () => {});
    },
  );
  srv.listen(0, '127.0.0.1', () => process.send!({ port: (srv.address() as AddressInfo).port }));
  process.on('message', () => {
    (globalThis as { gc?: () => void }).gc?.();
    setTimeout(() => {
      process.send!({
        connections,
        rssKb: procStats(process.pid).rssKb,
        heapUsed: process.memoryUsage().heapUsed,
      } satisfies ServerReport);
    }, 300);
  });
}
