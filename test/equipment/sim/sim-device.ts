import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { TLSSocket } from 'node:tls';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import {
  type Challenge,
  channelExporter,
  decodeGatewayMessage,
  deviceIdentity,
  type ErrorMessage,
  type Evidence,
  encodeMessage,
  ProtocolError,
  type Result,
  topics,
} from '../../../shared/protocol/index.ts';
import { SimAttester, type SimAttesterOptions } from './attester.ts';

// One simulated device: a SimAttester behind its own mqtt.js client on its own TLS 1.3
// connection, speaking vigil/1 as the agent does (hello after every CONNECT, every challenge
// answered with evidence bound to this connection's exporter). It exists for load tests and
// benchmarks; a few switches make it misbehave for tests.

export interface SimDeviceOptions extends SimAttesterOptions {
  /** Never answers a challenge (the gateway marks the round stale at its deadline). */
  readonly silent?: boolean;
  /** Waits this long before answering each challenge. */
  readonly answerDelayMs?: number;
  /** Binds evidence to a wrong exporter value, as a relay would (binding-mismatch). */
  readonly wrongBinding?: boolean;
  /** Results kept in `results` (oldest dropped); default 8, to bound memory in large fleets. */
  readonly keepResults?: number;
}

export interface ConnectOptions {
  /** clientId suffix; a fresh random one per connection by default. */
  readonly suffix?: string;
  /** Reconnect after the connection drops (off by default), with full-jitter exponential backoff. */
  readonly reconnect?: boolean | { readonly baseMs?: number; readonly capMs?: number };
  /** Fails connect() if no CONNACK came within this (default 10 s). */
  readonly connectTimeoutMs?: number;
  /** MQTT keepalive, seconds (default 60). */
  readonly keepaliveS?: number;
}

export interface SimDeviceEvents {
  result: [Result];
  challenge: [Challenge];
  /** A gateway `error` message (only emitted when someone listens: see `errors`). */
  error: [ErrorMessage];
  evidence: [Evidence];
  connect: [];
  close: [];
}

export class SimDevice extends EventEmitter<SimDeviceEvents> {
  readonly attester: SimAttester;
  readonly id: string;
  /** Switches, changeable at any time. */
  silent: boolean;
  answerDelayMs: number;
  wrongBinding: boolean;
  /** The last results received, newest last. */
  readonly results: Result[] = [];
  /** The last gateway `error` messages, newest last. */
  readonly errors: ErrorMessage[] = [];
  resultCount = 0;
  challengeCount = 0;
  connectCount = 0;
  readonly #keep: number;
  #client: MqttClient | undefined;
  #closing = false;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #attempt = 0;

  private constructor(opts: SimDeviceOptions) {
    super();
    this.attester = new SimAttester(opts);
    this.id = deviceIdentity(this.attester.keys.ekPublicArea).deviceId;
    this.silent = opts.silent ?? false;
    this.answerDelayMs = opts.answerDelayMs ?? 0;
    this.wrongBinding = opts.wrongBinding ?? false;
    this.#keep = opts.keepResults ?? 8;
  }

  static create(opts: SimDeviceOptions = {}): SimDevice {
    return new SimDevice(opts);
  }

  /** Marshalled TPMT_PUBLIC of the EK (hello.ek). */
  get ekPublicArea(): Uint8Array {
    return this.attester.keys.ekPublicArea;
  }

  /** Lowercase hex SHA-256 of the EK: what an operator puts on the allowlist. */
  get ekHash(): string {
    return deviceIdentity(this.ekPublicArea).ekHash;
  }

  get lastResult(): Result | undefined {
    return this.results.at(-1);
  }

  get connected(): boolean {
    return this.#client?.connected ?? false;
  }

  /** The MQTT client of the current connection, for application traffic (undefined before connect). */
  get mqtt(): MqttClient | undefined {
    return this.#client;
  }

  /** The TLS socket of the current connection (undefined before the first CONNACK). */
  socket(): TLSSocket | undefined {
    return this.#client?.stream as unknown as TLSSocket | undefined;
  }

  /** Resolves with the next `result`, or rejects after `timeoutMs`. */
  nextResult(timeoutMs = 10_000): Promise<Result> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('result', onResult);
        reject(new Error(`sim ${this.id}: no result within ${timeoutMs} ms`));
      }, timeoutMs);
      const onResult = (r: Result) => {
        clearTimeout(timer);
        resolve(r);
      };
      this.once('result', onResult);
    });
  }

  /**
   * Opens a connection (MQTT 3.1.1 over TLS 1.3, pinning `ca`), subscribes to `in` and sends
   * hello. Resolves after CONNACK; rejects when the gateway refuses or the connection fails.
   */
  connect(url: string, ca: Buffer | string, opts: ConnectOptions = {}): Promise<void> {
    this.#closing = false;
    return this.#open(url, ca, opts);
  }

  #open(url: string, ca: Buffer | string, opts: ConnectOptions): Promise<void> {
    const suffix = opts.suffix ?? randomBytes(4).toString('hex');
    const client = mqtt.connect(url, {
      ca,
      protocolVersion: 4,
      clientId: `${this.id}.${suffix}`,
      username: this.id,
      reconnectPeriod: 0,
      minVersion: 'TLSv1.3',
      connectTimeout: opts.connectTimeoutMs ?? 10_000,
      keepalive: opts.keepaliveS ?? 60,
    } as IClientOptions);
    this.#client = client;
    const inTopic = topics.in(this.id);
    client.on('message', (topic, payload) => {
      if (topic === inTopic) this.#onMessage(client, payload);
    });
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      client.once('connect', () => {
        settled = true;
        this.connectCount++;
        this.#attempt = 0;
        // Subscribe, then hello: both are queued in order on the socket, so the challenge that
        // answers the hello cannot arrive before the subscription exists.
        client.subscribe(inTopic, { qos: 0 });
        client.publish(topics.out(this.id), Buffer.from(encodeMessage(this.attester.hello())), { qos: 0 });
        this.emit('connect');
        resolve();
      });
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        client.end(true);
        reject(new Error(`sim ${this.id}: ${err.message}`));
      };
      client.once('error', fail);
      client.on('close', () => {
        fail(new Error('connection closed before CONNACK'));
        if (this.#client !== client) return;
        this.emit('close');
        this.#scheduleReconnect(url, ca, opts);
      });
    });
  }

  #scheduleReconnect(url: string, ca: Buffer | string, opts: ConnectOptions): void {
    if (this.#closing || !opts.reconnect) return;
    const { baseMs = 100, capMs = 5000 } = opts.reconnect === true ? {} : opts.reconnect;
    const delay = Math.random() * Math.min(capMs, baseMs * 2 ** this.#attempt++);
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      if (this.#closing) return;
      // A failed attempt closes, which schedules the next one.
      this.#open(url, ca, { ...opts, suffix: randomBytes(4).toString('hex') }).catch(() => {});
    }, delay);
  }

  #onMessage(client: MqttClient, payload: Buffer): void {
    let m: ReturnType<typeof decodeGatewayMessage>;
    try {
      m = decodeGatewayMessage(payload);
    } catch (e) {
      if (e instanceof ProtocolError) return;
      throw e;
    }
    if (m.t === 'challenge') {
      this.challengeCount++;
      this.emit('challenge', m);
      if (this.silent) return;
      if (this.answerDelayMs > 0) setTimeout(() => this.#answer(client, m), this.answerDelayMs);
      else this.#answer(client, m);
    } else if (m.t === 'result') {
      this.resultCount++;
      this.results.push(m);
      if (this.results.length > this.#keep) this.results.shift();
      this.emit('result', m);
    } else {
      this.errors.push(m);
      if (this.errors.length > this.#keep) this.errors.shift();
      if (this.listenerCount('error') > 0) this.emit('error', m);
    }
  }

  #answer(client: MqttClient, c: Challenge): void {
    if (!client.connected || this.#client !== client) return;
    const socket = client.stream as unknown as TLSSocket;
    const exporter = this.wrongBinding ? new Uint8Array(32) : channelExporter(socket, c.nonce);
    const evidence = this.attester.evidence(c, exporter);
    this.emit('evidence', evidence);
    client.publish(topics.out(this.id), Buffer.from(encodeMessage(evidence)), { qos: 0 });
  }

  /** Ends the connection (and any reconnecting); resolves once the socket is closed. */
  async close(): Promise<void> {
    this.#closing = true;
    if (this.#reconnectTimer) clearTimeout(this.#reconnectTimer);
    const client = this.#client;
    if (!client) return;
    await new Promise<void>((resolve) => client.end(true, {}, () => resolve()));
  }
}
