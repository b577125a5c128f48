import mqtt, { type MqttClient } from 'mqtt';

/** An operator / back-end MQTT client on the test gateway, collecting what it receives. */
export async function connectOperator(
  url: string,
  ca: Buffer,
  token: string,
): Promise<{
  client: MqttClient;
  received: { topic: string; payload: Buffer; retain: boolean }[];
  close(): Promise<void>;
}> {
  const client = mqtt.connect(url, {
    ca,
    protocolVersion: 4,
    username: 'operator',
    password: token,
    reconnectPeriod: 0,
  });
  const received: { topic: string; payload: Buffer; retain: boolean }[] = [];
  client.on('message', (topic, payload, packet) => received.push({ topic, payload, retain: packet.retain }));
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  return { client, received, close: () => client.endAsync(true).then(() => undefined) };
}

/** Polls until `check` holds or the bound passes; for effects that travel through a broker. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 5000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Lets in-flight MQTT traffic settle, to assert that something did NOT arrive. */
export const settle = (ms = 300) => new Promise((r) => setTimeout(r, ms));
