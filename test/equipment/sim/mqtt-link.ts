import { lookup } from 'node:dns';
import tls from 'node:tls';
import mqttPacket, { type Packet } from 'mqtt-packet';

// A minimal MQTT 3.1.1 client over TLS 1.3 for the simulator: CONNECT, SUBSCRIBE, PUBLISH at
// QoS 0, PINGREQ, DISCONNECT, and nothing else (no QoS 1/2, no session store, no reconnect: the
// caller decides that). mqtt.js carries far more per connection than a simulated device needs,
// and a fleet of ten thousand shares the bench's two cores with the gateway it loads. Packets are
// framed and parsed by mqtt-packet, the codec mqtt.js and aedes use, so what goes on the wire is
// what those write.

/** CONNACK return codes of MQTT 3.1.1 (§3.2.2.3), as an error text says them. */
const CONNACK_REFUSALS: Readonly<Record<number, string>> = {
  1: 'unacceptable protocol version',
  2: 'identifier rejected',
  3: 'server unavailable',
  4: 'bad user name or password',
  5: 'not authorized',
};

/**
 * One TLS client context per CA for every link: a context of its own per connection would parse
 * the CA again each time and hold an OpenSSL SSL_CTX per simulated device.
 */
const contexts = new Map<string, tls.SecureContext>();
function contextFor(ca: Buffer | string): tls.SecureContext {
  const key = ca.toString();
  let context = contexts.get(key);
  if (!context) {
    context = tls.createSecureContext({ ca, minVersion: 'TLSv1.3' });
    contexts.set(key, context);
  }
  return context;
}

/** Loopback names resolved once per process, not once per simulated device. */
const resolved = new Map<string, { address: string; family: number }>();
const cachedLookup: typeof lookup = ((
  host: string,
  options: { all?: boolean },
  done: (
    err: NodeJS.ErrnoException | null,
    address: string | { address: string; family: number }[],
    family?: number,
  ) => void,
) => {
  const hit = resolved.get(host);
  if (hit) {
    if (options.all) done(null, [hit]);
    else done(null, hit.address, hit.family);
    return;
  }
  lookup(host, { ...options, all: false }, (err, address, family) => {
    if (!err) resolved.set(host, { address, family });
    if (err || !options.all) done(err, address, family);
    else done(null, [{ address, family }]);
  });
}) as typeof lookup;

export interface MqttLinkOptions {
  /** `mqtts://host:port` */
  readonly url: string;
  /** The CA the broker's certificate must chain to. */
  readonly ca: Buffer | string;
  readonly clientId: string;
  readonly username?: string;
  readonly password?: Buffer;
  /** Seconds; a PINGREQ goes out when nothing else was written for most of it. */
  readonly keepaliveS: number;
  /** connect() fails when no CONNACK came within this. */
  readonly connectTimeoutMs: number;
  /** A PUBLISH from the broker. */
  readonly onMessage: (topic: string, payload: Buffer) => void;
  /** The connection ended (after connect() resolved, or instead of it). */
  readonly onClose: () => void;
}

export class MqttLink {
  readonly socket: tls.TLSSocket;
  /** Resolves on CONNACK 0; rejects on a refusal, a timeout or a connection that ended first. */
  readonly ready: Promise<void>;
  #connected = false;
  #nextId = 1;
  #keepalive: NodeJS.Timeout | undefined;
  #wrote = false;
  readonly #subscribing = new Map<number, () => void>();

  /** Opens the TLS connection and sends CONNECT once it is up. */
  constructor(private readonly opts: MqttLinkOptions) {
    const url = new URL(opts.url);
    if (url.protocol !== 'mqtts:') throw new Error(`mqtt link: expected an mqtts:// URL, got ${opts.url}`);
    this.socket = tls.connect({
      host: url.hostname,
      port: Number(url.port || 8883),
      servername: url.hostname,
      secureContext: contextFor(opts.ca),
      lookup: cachedLookup,
    });
    this.ready = this.#start();
    // A caller that closes before CONNACK need not await ready.
    this.ready.catch(() => {});
  }

  get connected(): boolean {
    return this.#connected;
  }

  #start(): Promise<void> {
    const { socket, opts } = this;
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      const timer = setTimeout(
        () => fail(new Error(`no CONNACK within ${opts.connectTimeoutMs} ms`)),
        opts.connectTimeoutMs,
      );
      socket.once('secureConnect', () => {
        this.#write({
          cmd: 'connect',
          protocolId: 'MQTT',
          protocolVersion: 4,
          clean: true,
          clientId: opts.clientId,
          keepalive: opts.keepaliveS,
          ...(opts.username !== undefined && { username: opts.username }),
          ...(opts.password !== undefined && { password: opts.password }),
        });
      });
      parser.on('packet', (p: Packet) => {
        if (p.cmd === 'publish') {
          opts.onMessage(p.topic, p.payload as Buffer);
        } else if (p.cmd === 'suback') {
          const done = this.#subscribing.get(p.messageId ?? 0);
          this.#subscribing.delete(p.messageId ?? 0);
          done?.();
        } else if (p.cmd === 'connack' && !settled) {
          const code = p.returnCode ?? 0;
          if (code !== 0) {
            fail(new Error(`connection refused: ${CONNACK_REFUSALS[code] ?? `return code ${code}`}`));
            return;
          }
          settled = true;
          clearTimeout(timer);
          this.#connected = true;
          this.#armKeepalive();
          resolve();
        }
      });
      parser.on('error', (err: Error) => {
        fail(err);
        socket.destroy(err);
      });
      socket.on('data', (chunk: Buffer) => parser.parse(chunk));
      socket.on('error', (err) => fail(err));
      socket.on('close', () => {
        fail(new Error('connection closed before CONNACK'));
        this.#connected = false;
        if (this.#keepalive) clearInterval(this.#keepalive);
        opts.onClose();
      });
    });
  }

  /** Resolves on SUBACK (callers that need not wait can ignore it: packets stay in order). */
  subscribe(topic: string): Promise<void> {
    const messageId = this.#messageId();
    const acked = new Promise<void>((resolve) => this.#subscribing.set(messageId, resolve));
    this.#write({ cmd: 'subscribe', messageId, subscriptions: [{ topic, qos: 0 }] });
    return acked;
  }

  publish(topic: string, payload: Buffer | Uint8Array): void {
    const bytes = Buffer.isBuffer(payload)
      ? payload
      : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    this.#write({ cmd: 'publish', topic, payload: bytes, qos: 0, retain: false, dup: false });
  }

  /** Sends DISCONNECT (when `clean`) and closes; resolves once the socket is closed. */
  end(clean = true): Promise<void> {
    const { socket } = this;
    if (socket.destroyed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      socket.once('close', () => resolve());
      if (clean && this.#connected) {
        this.#write({ cmd: 'disconnect' });
        socket.end();
      } else socket.destroy();
    });
  }

  #write(packet: Packet): void {
    if (this.socket.destroyed) return;
    this.#wrote = true;
    this.socket.write(mqttPacket.generate(packet));
  }

  #messageId(): number {
    const id = this.#nextId;
    this.#nextId = id === 0xffff ? 1 : id + 1;
    return id;
  }

  /** PINGREQ when a keepalive half passed without a packet from us: the broker cuts at 1.5×. */
  #armKeepalive(): void {
    if (this.opts.keepaliveS <= 0) return;
    this.#keepalive = setInterval(() => {
      if (!this.#wrote) this.#write({ cmd: 'pingreq' });
      this.#wrote = false;
    }, this.opts.keepaliveS * 500).unref();
  }
}
