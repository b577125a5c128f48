import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as assert from 'uvu/assert';
import { decodeGatewayMessage, type GatewayMessage, topics } from '../../shared/protocol/index.ts';
import type { TestGateway } from '../support/gateway.ts';
import { eventually } from '../support/operator.ts';
import type { Connected, ToolsDevice } from '../support/tools-device.ts';
import { honestRound } from './testbed.ts';

// What the abuse tests share: the honest device's check that it is still served (its app echo and
// an on-demand round), what a connection hears on its `in` topic, the refusal counters the
// operator API exposes, and a third-party late subscriber (mosquitto_sub).

const echoing = new WeakSet<Connected>();

/** The honest device publishes on its app topic and receives it on its own subscription. */
export async function appEcho(device: ToolsDevice, conn: Connected): Promise<void> {
  const topic = `app/${device.id}/echo`;
  if (!echoing.has(conn)) {
    assert.is(await conn.subscribe(topic), 0, 'the honest device may subscribe to its app topic');
    echoing.add(conn);
  }
  const tag = randomBytes(6).toString('hex');
  await conn.client.publishAsync(topic, tag, { qos: 1 });
  await eventually(
    () => conn.app.some((m) => m.topic === topic && m.payload.toString() === tag),
    'the honest device receives its own app message',
  );
}

/** The honest device is served: its app echo, and its next on-demand round affirmed. */
export async function honestServed(
  gw: TestGateway,
  device: ToolsDevice,
  conn: Connected,
  what: string,
): Promise<void> {
  await appEcho(device, conn);
  await honestRound(gw, device, conn, `${what}: the honest device's on-demand round`);
}

/** Gateway messages arriving on a connection's `in` topic from now on. */
export function hear(conn: Connected): { readonly messages: GatewayMessage[]; stop(): void } {
  const messages: GatewayMessage[] = [];
  const inTopic = topics.in(conn.client.options.username as string);
  const listener = (topic: string, payload: Buffer) => {
    if (topic === inTopic) messages.push(decodeGatewayMessage(payload));
  };
  conn.client.on('message', listener);
  return { messages, stop: () => conn.client.off('message', listener) };
}

/** The `error` messages among `messages`, as `code: detail`. */
export const errorsIn = (messages: readonly GatewayMessage[]): string[] =>
  messages.flatMap((m) => (m.t === 'error' ? [`${m.code}: ${m.detail}`] : []));

/** vigil_refusals_total by reason, from the operator API's /metrics. */
export async function refusals(gw: TestGateway): Promise<Record<string, number>> {
  const res = await fetch(`http://127.0.0.1:${gw.gateway.apiPort}/metrics`, {
    headers: { authorization: `Bearer ${gw.operatorToken}` },
  });
  const text = await res.text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^vigil_refusals_total\{reason="([a-z-]+)"\} (\d+)$/gm))
    out[m[1]!] = Number(m[2]);
  return out;
}

/**
 * mosquitto_sub as an operator, subscribing late to `filter` for the retained messages only;
 * resolves with one `topic length` line per message received within `seconds`.
 */
export function retainedSeenBy(
  gw: TestGateway,
  filter: string,
  seconds: number,
  children: ChildProcess[],
): Promise<string[]> {
  const child = spawn('mosquitto_sub', [
    ...['-h', 'localhost', '-p', String(gw.port), '--cafile', gw.caPath, '--tls-version', 'tlsv1.3'],
    ...['-u', 'operator', '-P', gw.operatorToken, '-t', filter, '--retained-only'],
    ...['-F', '%t %l', '-W', String(seconds)],
  ]);
  children.push(child);
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  return new Promise((resolve) => child.once('exit', () => resolve(out.split('\n').filter((l) => l !== ''))));
}
