import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { createPki, loadTlsMaterial, type TlsMaterial } from '../../gateway/setup/pki.ts';

let cached: TlsMaterial | undefined;

/** A CA and a localhost server certificate, made once per test process. */
export function testPki(): TlsMaterial {
  if (!cached) {
    const dir = mkdtempSync(join(tmpdir(), 'vigil-pki-'));
    try {
      cached = loadTlsMaterial(createPki(dir, ['localhost']));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return cached;
}

export interface TlsPair {
  readonly server: tls.TLSSocket;
  readonly client: tls.TLSSocket;
  close(): void;
}

/** Two ends of one real TLS 1.3 connection on loopback. */
export async function withTlsPair(): Promise<TlsPair> {
  const pki = testPki();
  const server = tls.createServer({ key: pki.key, cert: pki.cert, minVersion: 'TLSv1.3' });
  const accepted = new Promise<tls.TLSSocket>((resolve) => server.once('secureConnection', resolve));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const client = tls.connect({
    host: '127.0.0.1',
    port,
    ca: pki.ca,
    servername: 'localhost',
    minVersion: 'TLSv1.3',
  });
  await new Promise<void>((resolve, reject) => client.once('secureConnect', resolve).once('error', reject));
  const serverSide = await accepted;
  return {
    server: serverSide,
    client,
    close() {
      client.destroy();
      serverSide.destroy();
      server.close();
    },
  };
}
