import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import type { Aedes, Client } from 'aedes';
import { decodeDeviceMessage } from '../../shared/protocol/envelope.ts';
import type { DeviceMessage } from '../../shared/protocol/messages.ts';
import { topics } from '../../shared/protocol/topics.ts';
import { testPki } from '../support/tls-pair.ts';

// A bare aedes broker on TLS 1.3, standing in for the gateway where the agent's side of the
// connection is under test: it records what devices publish (with the server end of the TLS
// connection, for the exporter) and lets the test publish raw payloads to a device's `in`.
// The end-to-end tests run the gateway proper.

export interface Received {
  readonly message: DeviceMessage;
  readonly raw: Uint8Array;
  /** The broker's end of the TLS connection the message came on. */
  readonly conn: tls.TLSSocket;
  readonly clientId: string;
}

export interface TestBroker {
  readonly url: string;
  readonly ca: Buffer;
  readonly received: Received[];
  /** Server ends of the connections accepted so far, in order. */
  readonly connections: tls.TLSSocket[];
  /** Resolves with the first message (from now on or already received after `after`) matching. */
  next(match: (r: Received) => boolean, after?: number): Promise<Received>;
  send(deviceId: string, payload: Uint8Array): Promise<void>;
  /** Drops every device connection from the broker's side. */
  dropAll(): void;
  close(): Promise<void>;
}

const WAIT_MS = 15_000;

export async function startTestBroker(): Promise<TestBroker> {
  const pki = testPki();
  const { Aedes } = await import('aedes');
  const broker: Aedes = await Aedes.createBroker();
  const received: Received[] = [];
  const connections: tls.TLSSocket[] = [];
  const waiters = new Set<() => void>();
  const clients = new Set<Client>();
  broker.on('client', (c) => clients.add(c));
  broker.on('clientDisconnect', (c) => clients.delete(c));
  broker.on('publish', (packet, client) => {
    if (!client || !packet.topic.startsWith('vigil/v1/') || !packet.topic.endsWith('/out')) return;
    const raw = new Uint8Array(packet.payload as Buffer);
    received.push({
      message: decodeDeviceMessage(raw),
      raw,
      conn: client.conn as unknown as tls.TLSSocket,
      clientId: client.id,
    });
    for (const w of waiters) w();
  });
  const server = tls.createServer({ key: pki.key, cert: pki.cert, minVersion: 'TLSv1.3' }, (socket) => {
    connections.push(socket);
    broker.handle(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `mqtts://localhost:${port}`,
    ca: pki.ca,
    received,
    connections,
    next(match, after = 0) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = received.slice(after).find(match);
          if (hit) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(hit);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching device message within ${WAIT_MS} ms`));
        }, WAIT_MS);
        waiters.add(check);
        check();
      });
    },
    send(deviceId, payload) {
      return new Promise((resolve, reject) =>
        broker.publish(
          {
            cmd: 'publish',
            topic: topics.in(deviceId),
            payload: Buffer.from(payload),
            qos: 0,
            retain: false,
            dup: false,
          },
          (err) => (err ? reject(err) : resolve()),
        ),
      );
    },
    dropAll() {
      for (const c of clients) c.conn.destroy();
    },
    async close() {
      for (const c of clients) c.conn.destroy();
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
