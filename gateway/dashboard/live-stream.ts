import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError } from '../api/errors.ts';
import type { EventFeed, GatewayEvent } from '../events.ts';
import { EventRing } from './event-ring.ts';

// The dashboard's live stream: the gateway's events as server-sent events, one stream per browser
// tab. Every event gets an id `<epoch>-<n>`; a browser that reconnects sends the last one it saw
// (Last-Event-ID) and gets what it missed from a ring of recent events, or, when the ring no
// longer holds them (or the gateway restarted: another epoch), a `hello` that says it must reload
// its snapshot. A comment every 15 s keeps proxies and the browser from calling the stream idle.
// Events go out in batches, once per turn of the event loop, so that a fleet round's thousands
// of events cost a few writes per client, and a client that cannot keep up is disconnected (it
// reconnects and catches up, or reloads) instead of growing the gateway's memory. While nobody
// watches, events are only kept, not serialized: an unwatched gateway pays next to nothing.

export interface LiveStreamOptions {
  /** Events kept for reconnecting clients (default 4096). */
  readonly capacity?: number;
  readonly heartbeatMs?: number;
  readonly maxClients?: number;
  /** Bytes queued for one client beyond which it is disconnected (default 4 MiB). */
  readonly maxBufferedBytes?: number;
  /** Identifies this process's numbering (default: random). */
  readonly epoch?: string;
}

/** What a `hello` tells the client, after any replay. */
export interface StreamHello {
  /** True when the missed events were replayed: the client's state is current. */
  readonly resumed: boolean;
  /** False when the gateway has no event feed: the client must poll instead. */
  readonly live: boolean;
}

const HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-store',
  connection: 'keep-alive',
  // Reverse proxies (nginx) buffer responses unless told not to.
  'x-accel-buffering': 'no',
};

export class LiveStream {
  private readonly ring: EventRing<GatewayEvent>;
  private readonly clients = new Set<ServerResponse>();
  private readonly epoch: string;
  private readonly maxClients: number;
  private readonly maxBuffered: number;
  private readonly unsubscribe: () => void;
  private readonly heartbeat: NodeJS.Timeout;
  private pending = '';
  private flushing: NodeJS.Immediate | undefined;

  constructor(
    private readonly feed: EventFeed | undefined,
    opts: LiveStreamOptions = {},
  ) {
    this.ring = new EventRing(opts.capacity ?? 4096);
    this.epoch = opts.epoch ?? randomBytes(6).toString('hex');
    this.maxClients = opts.maxClients ?? 64;
    this.maxBuffered = opts.maxBufferedBytes ?? 4 * 1024 * 1024;
    this.unsubscribe = feed?.subscribe((e) => this.publish(e)) ?? (() => {});
    this.heartbeat = setInterval(() => this.send(': keepalive\n\n'), opts.heartbeatMs ?? 15_000);
    this.heartbeat.unref();
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** Takes over the response as this client's stream. */
  attach(req: IncomingMessage, res: ServerResponse): void {
    if (this.clients.size >= this.maxClients)
      throw new ApiError(
        'too-many-streams',
        `the gateway already serves ${this.maxClients} live streams: close some dashboard tabs and retry`,
      );
    // Whatever was queued has its numbers already: out with it first, so that the new client
    // gets each event exactly once (by replay or live).
    this.flush();
    const missed = this.missed(req.headers['last-event-id']);
    let out = 'retry: 3000\n\n';
    for (const { seq, item } of missed ?? []) out += this.frame(seq, item);
    const hello: StreamHello = { resumed: missed !== undefined, live: this.feed !== undefined };
    out += `id: ${this.epoch}-${this.ring.last}\nevent: hello\ndata: ${JSON.stringify(hello)}\n\n`;
    res.writeHead(200, HEADERS);
    res.write(out);
    this.clients.add(res);
    const drop = () => this.clients.delete(res);
    req.once('close', drop);
    res.once('close', drop);
  }

  close(): void {
    this.unsubscribe();
    clearInterval(this.heartbeat);
    if (this.flushing) clearImmediate(this.flushing);
    for (const res of this.clients) res.end();
    this.clients.clear();
  }

  private missed(header: string | string[] | undefined) {
    if (typeof header !== 'string') return undefined;
    const m = /^([0-9a-f]+)-(\d+)$/.exec(header);
    if (!m || m[1] !== this.epoch) return undefined;
    return this.ring.after(Number(m[2]));
  }

  private frame(seq: number, event: GatewayEvent): string {
    return `id: ${this.epoch}-${seq}\ndata: ${JSON.stringify(event)}\n\n`;
  }

  private publish(event: GatewayEvent): void {
    const seq = this.ring.push(event);
    if (this.clients.size > 0) this.send(this.frame(seq, event));
  }

  private send(chunk: string): void {
    if (this.clients.size === 0) return;
    this.pending += chunk;
    this.flushing ??= setImmediate(() => this.flush());
  }

  private flush(): void {
    if (this.flushing) clearImmediate(this.flushing);
    this.flushing = undefined;
    const chunk = this.pending;
    this.pending = '';
    if (chunk === '') return;
    for (const res of this.clients) {
      res.write(chunk);
      if (res.writableLength > this.maxBuffered) {
        this.clients.delete(res);
        res.destroy();
      }
    }
  }
}
