import { constants } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { writeHeapSnapshot } from 'node:v8';
import { Aedes } from 'aedes';
import { parseVigilTopic, topics } from '../../shared/protocol/index.ts';
import { serve } from '../ipc.ts';
import { Responder } from './responder.ts';

// Side by side (figure 2): a plain aedes broker on TLS 1.3, configured as the gateway configures
// its own (same key, certificate and TLS options), with the stand-in responder in the same
// process: what our stack costs for the same messages without attestation. Messages travel as
// any aedes user would send them: published to the topic, delivered to its subscriber.
// Usage: aedes-process.ts KEY CERT EAR_BYTES PORT (on loopback).

const [keyPath, certPath, earBytes, port] = process.argv.slice(2);
if (!keyPath || !certPath || !earBytes || !port)
  throw new Error('usage: aedes-process.ts KEY CERT EAR_BYTES PORT');

const aedes = await Aedes.createBroker();
// Answers are published from the next turn of the event loop, all of a turn's together: published
// from inside aedes' own publish event, each would nest into the emitter that delivered its
// question, and ten thousand of them overflow the stack.
let outbox: { id: string; payload: Uint8Array }[] = [];
const publishOutbox = () => {
  const batch = outbox;
  outbox = [];
  for (const { id, payload } of batch)
    aedes.publish(
      {
        cmd: 'publish',
        topic: topics.in(id),
        payload: Buffer.from(payload),
        qos: 0,
        retain: false,
        dup: false,
      },
      () => {},
    );
};
const responder = new Responder((id, payload) => {
  if (outbox.push({ id, payload }) === 1) setImmediate(publishOutbox);
}, Number(earBytes));
aedes.on('publish', (packet, client) => {
  if (!client) return;
  const t = parseVigilTopic(packet.topic);
  if (t?.kind === 'out') responder.onMessage(t.id, packet.payload as Buffer);
});

const server = tls.createServer(
  {
    key: readFileSync(keyPath),
    cert: readFileSync(certPath),
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    secureOptions: constants.SSL_OP_NO_TICKET,
  },
  aedes.handle,
);
await new Promise<void>((resolve) => server.listen(Number(port), '127.0.0.1', resolve));

serve({
  port: () => (server.address() as AddressInfo).port,
  stats: () => ({
    sessions: aedes.connectedClients,
    attested: responder.devices,
    mem: process.memoryUsage(),
  }),
  gc: () => {
    (globalThis as { gc?: () => void }).gc?.();
    return true;
  },
  heapSnapshot: (args) => {
    (globalThis as { gc?: () => void }).gc?.();
    return writeHeapSnapshot((args as { path: string }).path);
  },
  round: (args) => responder.round((args as { slice?: number } | undefined)?.slice),
  async close() {
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    server.close();
    setImmediate(() => process.exit(0));
    return true;
  },
});
process.send?.({ id: 0, ok: true, value: 'ready' });
