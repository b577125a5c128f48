import type { Aedes, Client } from 'aedes';
import type { Logger } from 'pino';
import { decodeCbor } from '../../shared/cbor/decode.ts';
import { encodeCbor } from '../../shared/cbor/encode.ts';
import type { CborValue } from '../../shared/cbor/value.ts';
import type { Clock, Timer } from '../../shared/clock.ts';
import { appChannel, type ControlBus } from './bus.ts';
import { every } from './every.ts';
import { anyMatches } from './topic-filter.ts';

// Application traffic between gateways: device A on one gateway, its back end or device B on
// another. Each gateway tells the others which app/ filters its clients subscribe to (soft state,
// sent on change and again every third of a claim's expiry), and forwards a publish of its own
// clients only to the gateways that want it. The receiving gateway publishes it into its broker,
// where its own gating (access.ts, at delivery) decides who gets it; the sending gateway's
// gating already decided who may publish it. Guarantees: at most once across gateways (Redis
// pub/sub keeps nothing), in order per publisher and receiving gateway, retained messages
// retained where they were published and where they were forwarded to (docs/scale.md).

export interface AppBridgeDeps {
  readonly me: string;
  readonly bus: ControlBus;
  readonly aedes: Aedes;
  readonly clock: Clock;
  /** How long another gateway's interest counts without being sent again. */
  readonly ttlMs: number;
  readonly log: Logger;
}

const GRANTED_NONE = 128;

export class AppBridge {
  private readonly local = new Map<Client, Set<string>>();
  private readonly remote = new Map<string, { filters: readonly string[]; seen: number }>();
  private announceTimer: Timer | undefined;
  private stopTicking: (() => void) | undefined;
  forwarded = 0;
  delivered = 0;

  constructor(private readonly deps: AppBridgeDeps) {
    const { aedes, bus, me } = deps;
    aedes.on('subscribe', (subs, client) => {
      const app = subs
        .filter((s) => s.topic.startsWith('app/') && (s.qos as number) !== GRANTED_NONE)
        .map((s) => s.topic);
      if (app.length === 0 || !client) return;
      const set = this.local.get(client) ?? new Set();
      for (const f of app) set.add(f);
      this.local.set(client, set);
      this.announceSoon();
    });
    aedes.on('unsubscribe', (topics, client) => {
      const set = client && this.local.get(client);
      if (!set) return;
      for (const t of topics) set.delete(t);
      this.announceSoon();
    });
    aedes.on('clientDisconnect', (client) => {
      if (this.local.delete(client)) this.announceSoon();
    });
    aedes.on('publish', (packet, client) => {
      // Only what this gateway's own clients published (not what was forwarded in, not $SYS).
      if (client && packet.topic.startsWith('app/'))
        this.forward(packet.topic, packet.payload as Buffer, packet.qos, packet.retain);
    });
    bus.on('interest', (m) => {
      if (m.from !== me) this.remote.set(m.from, { filters: m.filters, seen: deps.clock.now() });
    });
    bus.subscribeRaw(appChannel(me), (message) => this.deliver(message));
    bus.onUp(() => this.announce());
  }

  /** Sends this gateway's interest again, and forgets others' not sent again, every third of the TTL. */
  start(): void {
    this.stopTicking = every(this.deps.clock, this.deps.ttlMs / 3, () => {
      const cut = this.deps.clock.now() - this.deps.ttlMs;
      for (const [gw, i] of this.remote) if (i.seen < cut) this.remote.delete(gw);
      this.announce();
    });
  }

  /** The app/ filters this gateway's clients hold now. */
  filters(): string[] {
    const all = new Set<string>();
    for (const set of this.local.values()) for (const f of set) all.add(f);
    return [...all].sort();
  }

  private announceSoon(): void {
    this.announceTimer ??= this.deps.clock.after(20, () => {
      this.announceTimer = undefined;
      this.announce();
    });
  }

  private announce(): void {
    void this.deps.bus.toFleet({ t: 'interest', from: this.deps.me, filters: this.filters() });
  }

  private forward(topic: string, payload: Buffer, qos: 0 | 1 | 2, retain: boolean): void {
    let frame: Uint8Array | undefined;
    for (const [gw, i] of this.remote) {
      if (!anyMatches(i.filters, topic)) continue;
      frame ??= encodeCbor({ topic, payload: new Uint8Array(payload), qos, retain });
      this.forwarded++;
      void this.deps.bus.publish(appChannel(gw), Buffer.from(frame));
    }
  }

  private deliver(message: Buffer): void {
    let m: CborValue;
    try {
      m = decodeCbor(new Uint8Array(message));
    } catch {
      m = null;
    }
    const get = (k: string) => (m instanceof Map ? m.get(k) : undefined);
    const topic = get('topic');
    const payload = get('payload');
    const qos = get('qos');
    const retain = get('retain');
    // Only app/ traffic is ever forwarded: nothing from the bus can reach vigil/ topics.
    if (
      typeof topic !== 'string' ||
      !topic.startsWith('app/') ||
      !(payload instanceof Uint8Array) ||
      (qos !== 0 && qos !== 1 && qos !== 2) ||
      typeof retain !== 'boolean'
    ) {
      this.deps.log.warn('control bus: a forwarded application message was malformed; dropped');
      return;
    }
    this.delivered++;
    this.deps.aedes.publish(
      { cmd: 'publish', topic, payload: Buffer.from(payload), qos, retain, dup: false },
      (err) => {
        if (err) this.deps.log.debug({ err: err.message, topic }, 'forwarded publish failed');
      },
    );
  }

  close(): void {
    this.stopTicking?.();
    this.announceTimer?.cancel();
  }
}
