import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { type TLSSocket, type ConnectionOptions as TlsOptions, connect as tlsConnect } from 'node:tls';
import { type IClientOptions, MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { topics } from '../shared/protocol/topics.ts';
import { Backoff, type BackoffPolicy, DEFAULT_BACKOFF } from './backoff.ts';
import type { GatewayAddress } from './config.ts';
import type { ConnectionState } from './state.ts';

// The agent's link to its gateway (PROTOCOL.md §1): MQTT 3.1.1 over TLS 1.3 only, the gateway
// authenticated by the CA pinned at provisioning, username = clientId = device id, and a fresh
// TLS session on every connection (no resumption: attestation never carries over, so neither
// may the channel it is bound to). One connection at a time; after it closes, the next attempt
// waits a fully jittered exponential delay. After every CONNACK: subscribe to our `in`, then
// send `hello` (subscribed first, so the challenge that answers the hello cannot be missed).

/** One established connection. Messages are answered on the session they arrived on. */
export interface Session {
  /** The TLS socket: the exporter of PROTOCOL.md §4 comes from it. */
  readonly socket: TLSSocket;
  readonly since: number;
  /** True until this connection closes; a later connection is another Session. */
  readonly open: boolean;
  /** Publishes on our `out` topic; rejects if this connection closed meanwhile. */
  publish(payload: Uint8Array): Promise<void>;
}

export interface ConnectionOptions {
  readonly gateway: GatewayAddress;
  /** PEM of the pinned CA: the only trust anchor for the gateway's certificate. */
  readonly ca: Buffer;
  readonly clientCert?: { readonly cert: Buffer; readonly key: Buffer };
  readonly deviceId: string;
  /** The encoded hello, sent after every CONNECT. */
  readonly hello: () => Uint8Array;
  readonly onMessage: (payload: Uint8Array, session: Session) => void;
  readonly onState: (state: ConnectionState) => void;
  readonly onSession?: (session: Session) => void;
  readonly logger: Logger;
  readonly backoff?: BackoffPolicy;
  /** A connection that lasted this long resets the backoff (ms). */
  readonly stableMs?: number;
  readonly connectTimeoutMs?: number;
  readonly keepaliveS?: number;
}

const DEFAULT_STABLE_MS = 30_000;

/** Thrown (logged) when a connection is not what vigil/1 requires, before anything is sent. */
export class ChannelError extends Error {
  override readonly name = 'ChannelError';
}

/** Checks the properties of the channel the binding relies on; the server promised them too. */
export function checkChannel(socket: TLSSocket): void {
  const protocol = socket.getProtocol();
  if (protocol !== 'TLSv1.3')
    throw new ChannelError(`negotiated ${protocol ?? 'no TLS'}; vigil/1 requires TLSv1.3`);
  if (socket.isSessionReused()) {
    throw new ChannelError(
      'the TLS session was resumed; vigil/1 requires a full handshake on every connection',
    );
  }
  if (!socket.authorized) {
    throw new ChannelError(`gateway certificate not trusted: ${String(socket.authorizationError)}`);
  }
}

const CERT_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
]);

/** An error of a connection attempt, with what to do about the usual ones. */
export function describeConnectionError(e: Error & { code?: unknown }): string {
  const code = typeof e.code === 'string' || typeof e.code === 'number' ? e.code : undefined;
  const base = code !== undefined ? `${e.message} (code ${code})` : e.message;
  if (typeof code === 'string' && CERT_CODES.has(code)) {
    return `${base}: the gateway's certificate is not signed by the pinned CA; re-run init with the gateway's ca.pem`;
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return `${base}: the gateway's certificate does not name the configured host; use a name it was issued for`;
  }
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
    return `${base}: check the gateway's certificate and this device's clock`;
  }
  if (/alert protocol version|unsupported protocol/i.test(e.message)) {
    return `${base}: the gateway does not offer TLS 1.3, which vigil/1 requires`;
  }
  if (typeof code === 'number') {
    // CONNACK return codes of MQTT 3.1.1.
    return `${base}: the gateway refused the MQTT connection (is this device admitted? check the gateway's log)`;
  }
  return base;
}

export class GatewayConnection {
  readonly #o: ConnectionOptions;
  readonly #backoff: Backoff;
  readonly #inTopic: string;
  readonly #outTopic: string;
  #client: MqttClient | undefined;
  #session: (Session & { open: boolean }) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #attempt = 0;

  constructor(o: ConnectionOptions) {
    this.#o = o;
    this.#backoff = new Backoff(o.backoff ?? DEFAULT_BACKOFF);
    this.#inTopic = topics.in(o.deviceId);
    this.#outTopic = topics.out(o.deviceId);
  }

  /** The current session, if connected. */
  get session(): Session | undefined {
    return this.#session?.open ? this.#session : undefined;
  }

  start(): void {
    this.#connect();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    const client = this.#client;
    this.#client = undefined;
    if (client) await new Promise<void>((resolve) => client.end(true, {}, () => resolve()));
    this.#o.onState({ status: 'stopped', since: Date.now() });
  }

  #connect(): void {
    if (this.#stopped) return;
    const { gateway, deviceId, logger } = this.#o;
    this.#attempt++;
    this.#o.onState({ status: 'connecting', since: Date.now(), attempt: this.#attempt });
    const tlsOptions: TlsOptions = {
      host: gateway.host,
      port: gateway.port,
      // SNI and name check against the configured host name (not for IP literals: RFC 6066).
      ...(isIP(gateway.host) === 0 && { servername: gateway.host }),
      ca: this.#o.ca,
      ...(this.#o.clientCert && { cert: this.#o.clientCert.cert, key: this.#o.clientCert.key }),
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      // No `session` option: nothing to resume from, so every connection makes a full handshake.
    };
    const options: IClientOptions = {
      protocolVersion: 4,
      // A fresh suffix per connection: the gateway refuses a clientId that is still connected
      // (no takeover), so a reconnect after a half-open connection must not reuse it.
      clientId: `${deviceId}.${randomBytes(4).toString('hex')}`,
      username: deviceId,
      clean: true,
      // Reconnection is ours (jittered); mqtt.js would retry at a fixed period.
      reconnectPeriod: 0,
      connectTimeout: this.#o.connectTimeoutMs ?? 30_000,
      keepalive: this.#o.keepaliveS ?? 60,
      // mqtt-packet otherwise builds a table of 65,536 two-byte Buffers for message ids on the
      // first packet: about 6 MB of heap for a client that sends QoS 0 only (npm run bench, 4).
      writeCache: false,
    };
    // mqtt.js' client over a TLS connection made here (its documented MqttClient(streamBuilder,
    // options)): mqtt.connect() would also load its WebSocket and SOCKS transports, which the
    // agent never uses and which cost it memory (docs/performance.md).
    const client = new MqttClient(() => tlsConnect(tlsOptions), options);
    this.#client = client;
    let closedReason = 'connection closed';
    let session: (Session & { open: boolean }) | undefined;

    client.on('connect', () => {
      const socket = client.stream as unknown as TLSSocket;
      try {
        checkChannel(socket);
      } catch (e) {
        closedReason = (e as Error).message;
        logger.error({ err: closedReason }, 'refusing the connection to the gateway');
        client.end(true);
        return;
      }
      const since = Date.now();
      this.#attempt = 0;
      const outTopic = this.#outTopic;
      const s: Session & { open: boolean } = {
        socket,
        since,
        open: true,
        publish(payload) {
          return new Promise<void>((resolve, reject) => {
            if (!s.open) {
              reject(new Error('the connection this message belongs to has closed'));
              return;
            }
            client.publish(
              outTopic,
              Buffer.from(payload.buffer, payload.byteOffset, payload.length),
              { qos: 0 },
              (err) => (err ? reject(err) : resolve()),
            );
          });
        },
      };
      session = s;
      this.#session = s;
      logger.info({ gateway: gateway.url, cipher: socket.getCipher().name }, 'connected to the gateway');
      this.#o.onState({ status: 'connected', since });
      this.#o.onSession?.(s);
      client.subscribe(this.#inTopic, { qos: 0 }, (err, granted) => {
        const refused = granted?.some((g) => g.qos === 128);
        if (err || refused) {
          closedReason = `subscription to ${this.#inTopic} refused${err ? `: ${err.message}` : ''}`;
          logger.error({ topic: this.#inTopic }, `${closedReason}; reconnecting`);
          client.end(true);
          return;
        }
        s.publish(this.#o.hello()).then(
          () => logger.debug('hello sent'),
          (e: Error) => logger.warn({ err: e.message }, 'could not send hello'),
        );
      });
    });

    client.on('message', (topic, payload) => {
      if (topic !== this.#inTopic || session === undefined) {
        logger.warn({ topic }, 'message on a topic this agent did not subscribe to; ignored');
        return;
      }
      this.#o.onMessage(new Uint8Array(payload.buffer, payload.byteOffset, payload.length), session);
    });

    client.on('error', (e: Error & { code?: unknown }) => {
      closedReason = describeConnectionError(e);
      logger.warn({ err: closedReason, gateway: gateway.url }, 'gateway connection error');
    });

    client.on('close', () => {
      if (session) session.open = false;
      if (this.#session === session) this.#session = undefined;
      if (this.#client !== client) return;
      client.removeAllListeners();
      client.on('error', () => {});
      client.end(true);
      this.#client = undefined;
      if (this.#stopped) return;
      if (session && Date.now() - session.since >= (this.#o.stableMs ?? DEFAULT_STABLE_MS))
        this.#backoff.reset();
      const delay = this.#backoff.next();
      const retryAt = Date.now() + delay;
      logger.info({ reason: closedReason, retryInMs: delay }, 'disconnected from the gateway');
      this.#o.onState({ status: 'disconnected', since: Date.now(), reason: closedReason, retryAt });
      this.#timer = setTimeout(() => this.#connect(), delay);
    });
  }
}
