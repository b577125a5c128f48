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
  private ups = 0;
  private closed = false;
  private downSince: number | undefined = Date.now();
  /** Channels wanted, with their listener, and whether Redis confirmed the subscription. */
  private readonly channels = new Map<string, { listener: (m: Buffer) => void; confirmed: boolean }>();

  constructor(private readonly opts: BusOptions) {
    const options = { ...redisOptions(opts.url), disableOfflineQueue: true };
    this.commands = createClient({ ...options, name: `vigil-${opts.gatewayId}` });
    this.subscriber = createClient({ ...options, name: `vigil-${opts.gatewayId}-sub` });
    for (const c of [this.commands, this.subscriber]) {
      c.on('error', (err: Error) => this.down(err));
      c.on('ready', () => {
        if (c === this.subscriber) this.subscribeAll();
        this.changed();
      });
      c.on('end', () => this.changed());
      c.on('reconnecting', () => this.changed());
    }
  }

  /** Starts connecting (and reconnecting); resolves at once, Redis there or not. */
  start(): void {
    for (const channel of [FLEET_CHANNEL, gatewayChannel(this.opts.gatewayId)])
      this.channels.set(channel, { listener: (m) => this.deliver(channel, m.toString()), confirmed: false });
    for (const c of [this.commands, this.subscriber]) c.connect().catch((err: Error) => this.down(err));
  }

  /**
   * Subscribes to the channels Redis has not confirmed yet (node-redis restores confirmed ones
   * after a reconnect by itself; one asked for while disconnected is not kept).
   */
  private subscribeAll(): void {
    for (const [channel, c] of this.channels) {
      if (c.confirmed) continue;
      this.subscriber.subscribe(channel, c.listener, true).then(
        () => {
          c.confirmed = true;
        },
        () => {
          // Disconnected again: the next 'ready' tries again.
        },
      );
    }
  }

  /** Whether both connections are ready now. */
  get up(): boolean {
    return this.commands.isReady && this.subscriber.isReady;
  }

  /** How many times the bus came up: what was checked at one coming-up is stale at the next. */
  get generation(): number {
    return this.ups;
  }

  /**
   * Called each time the bus comes (back) up, and now if it is up: listeners catch up on what
   * they may have missed.
   */
  onUp(listener: () => void): void {
    this.upListeners.push(listener);
    if (this.wasUp) queueMicrotask(() => this.notify([listener]));
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

  /** Subscribes to a channel of raw messages (application traffic), now or once connected. */
  subscribeRaw(channel: string, listener: (message: Buffer) => void): void {
    this.channels.set(channel, { listener, confirmed: false });
    if (this.subscriber.isReady) this.subscribeAll();
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
    this.ups++;
    this.notify(this.upListeners);
  }

  private notify(listeners: readonly (() => void)[]): void {
    for (const l of listeners) {
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
