import type { Logger } from 'pino';
import { createClient } from 'redis';
import { type BusMessage, parseBusMessage } from './messages.ts';

// The control bus between gateways: Redis (node-redis 6), two connections (commands and
// subscriptions). Never on the path of a device's messages, never fatal: while Redis is away the
// gateway goes on with what it holds (its connections, its rounds), publishes fail quietly and
// reconnection backs off; when Redis is back, `onUp` listeners catch up from PostgreSQL.

/** Every gateway listens here. */
export const FLEET_CHANNEL = 'vigil:fleet';
/** One gateway listens here. */
export const gatewayChannel = (id: string) => `vigil:gw:${id}`;
/** Application messages forwarded to one gateway (CBOR). */
export const appChannel = (id: string) => `vigil:app:${id}`;

export type RedisClient = ReturnType<typeof createClient>;

/** Full-jitter exponential backoff, 100 ms doubling up to 5 s. */
export function reconnectDelay(retries: number, random = Math.random): number {
  return Math.round(random() * Math.min(5000, 100 * 2 ** Math.min(retries, 16))) + 50;
}

/** node-redis options from a redis://, rediss:// or unix:///path URL. */
export function redisOptions(url: string) {
  const socket = { reconnectStrategy: (retries: number) => reconnectDelay(retries), connectTimeout: 5000 };
  if (url.startsWith('unix:')) return { socket: { ...socket, path: new URL(url).pathname } };
  return { url, socket };
}

export interface BusOptions {
  readonly url: string;
  readonly gatewayId: string;
  readonly log: Logger;
}

export class ControlBus {
  readonly commands: RedisClient;
  private readonly subscriber: RedisClient;
  private readonly handlers = new Map<BusMessage['t'], ((m: BusMessage) => void)[]>();
  private readonly upListeners: (() => void)[] = [];
  private wasUp = false;
  private closed = false;
  private downSince: number | undefined = Date.now();

  constructor(private readonly opts: BusOptions) {
    const options = { ...redisOptions(opts.url), disableOfflineQueue: true };
    this.commands = createClient({ ...options, name: `vigil-${opts.gatewayId}` });
    this.subscriber = createClient({ ...options, name: `vigil-${opts.gatewayId}-sub` });
    for (const c of [this.commands, this.subscriber]) {
      c.on('error', (err: Error) => this.down(err));
      c.on('ready', () => this.changed());
      c.on('end', () => this.changed());
      c.on('reconnecting', () => this.changed());
    }
  }

  /** Starts connecting (and reconnecting); resolves at once, Redis there or not. */
  start(): void {
    const text = (channel: string) => (raw: string) => this.deliver(channel, raw);
    for (const c of [this.commands, this.subscriber]) c.connect().catch((err: Error) => this.down(err));
    // Subscriptions are restored by node-redis after each reconnect.
    for (const channel of [FLEET_CHANNEL, gatewayChannel(this.opts.gatewayId)])
      this.subscriber.subscribe(channel, text(channel)).catch(() => {
        // Not connected yet: node-redis subscribes once it is.
      });
  }

  /** Whether both connections are ready now. */
  get up(): boolean {
    return this.commands.isReady && this.subscriber.isReady;
  }

  /** Called each time the bus comes (back) up: listeners catch up on what they may have missed. */
  onUp(listener: () => void): void {
    this.upListeners.push(listener);
  }

  on<T extends BusMessage['t']>(type: T, handler: (m: Extract<BusMessage, { t: T }>) => void): void {
    const list = this.handlers.get(type) ?? [];
    list.push(handler as (m: BusMessage) => void);
    this.handlers.set(type, list);
  }

  /** Publishes to every gateway (this one included); false when the bus is down. */
  toFleet(m: BusMessage): Promise<boolean> {
    return this.publish(FLEET_CHANNEL, JSON.stringify(m));
  }

  /** Publishes to one gateway; false when the bus is down. */
  toGateway(id: string, m: BusMessage): Promise<boolean> {
    return this.publish(gatewayChannel(id), JSON.stringify(m));
  }

  async publish(channel: string, payload: string | Buffer): Promise<boolean> {
    if (!this.up) return false;
    try {
      await this.commands.publish(channel, payload);
      return true;
    } catch (err) {
      this.down(err as Error);
      return false;
    }
  }

  /** Subscribes to a channel of raw messages (application traffic). */
  async subscribeRaw(channel: string, listener: (message: Buffer) => void): Promise<void> {
    await this.subscriber.subscribe(channel, listener, true).catch(() => {});
  }

  private deliver(channel: string, raw: string): void {
    const m = parseBusMessage(raw);
    if ('invalid' in m) {
      this.opts.log.warn({ channel, why: m.invalid }, 'control bus: a message was ignored');
      return;
    }
    for (const h of this.handlers.get(m.t) ?? []) {
      try {
        h(m);
      } catch (err) {
        this.opts.log.error({ err, type: m.t }, 'control bus: handling a message failed');
      }
    }
  }

  private down(err: Error): void {
    if (this.downSince === undefined) {
      this.downSince = Date.now();
      this.opts.log.warn(
        { err: err.message, redis: this.opts.url.replace(/\/\/[^@]*@/, '//') },
        'control bus (Redis) unreachable: cross-gateway work waits, local rounds go on; reconnecting',
      );
    }
    this.changed();
  }

  private changed(): void {
    const up = this.up;
    if (up === this.wasUp || this.closed) return;
    this.wasUp = up;
    if (!up) {
      this.downSince ??= Date.now();
      return;
    }
    this.opts.log.info(
      { downMs: this.downSince === undefined ? 0 : Date.now() - this.downSince },
      'control bus (Redis) connected',
    );
    this.downSince = undefined;
    for (const l of this.upListeners) {
      try {
        l();
      } catch (err) {
        this.opts.log.error({ err }, 'control bus: catching up failed');
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const c of [this.subscriber, this.commands]) {
      try {
        c.destroy();
      } catch {
        // already closed
      }
    }
  }
}
