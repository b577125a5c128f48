import { readFileSync } from 'node:fs';
import { parseVigilTopic, topics } from '../../shared/protocol/index.ts';
import { MqttLink } from '../../test/equipment/sim/mqtt-link.ts';
import { serve } from '../ipc.ts';
import { Responder } from './responder.ts';

// Side by side (figure 2): the stand-in responder as a client of mosquitto, one TLS connection
// subscribed to every device's `out`, publishing to each device's `in`: what a C broker costs for
// the transport alone, with the verifier's part of the traffic in a process of its own (its CPU
// is reported apart from the broker's). Usage: mosquitto-responder.ts URL CA EAR_BYTES.

const [url, caPath, earBytes] = process.argv.slice(2);
if (!url || !caPath || !earBytes) throw new Error('usage: mosquitto-responder.ts URL CA EAR_BYTES');

let responder: Responder | undefined;
const link = new MqttLink({
  url,
  ca: readFileSync(caPath),
  clientId: `bench-responder-${process.pid}`,
  keepaliveS: 60,
  connectTimeoutMs: 10_000,
  onMessage(topic, payload) {
    const t = parseVigilTopic(topic);
    if (t?.kind === 'out') responder?.onMessage(t.id, payload);
  },
  onClose() {
    process.stderr.write('mosquitto responder: connection to the broker closed\n');
    process.exit(1);
  },
});
await link.ready;
responder = new Responder((id, payload) => link.publish(topics.in(id), payload), Number(earBytes));
await link.subscribe('vigil/v1/+/out');

serve({
  stats: () => ({ attested: responder!.devices, mem: process.memoryUsage() }),
  gc: () => true,
  round: (args) => responder!.round((args as { slice?: number } | undefined)?.slice),
  async close() {
    await link.end();
    setImmediate(() => process.exit(0));
    return true;
  },
});
process.send?.({ id: 0, ok: true, value: 'ready' });
