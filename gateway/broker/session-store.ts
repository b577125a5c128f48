import type { Readable } from 'node:stream';
import memoryPersistence from 'aedes-persistence';
import type { DeviceQuotas } from '../policy/limits.ts';
import type { BrokerRefusal } from './limits.ts';

// aedes keeps the state of persistent sessions (clean=false) in its persistence: subscriptions,
// and every QoS 1/2 message for them until it is acknowledged, whether the client is online or
// not. Out of the box nothing bounds either: a device could subscribe, go away and let messages
// pile up, or come back under a fresh clientId suffix each time and leave a session behind each
// time. This wraps aedes' in-memory persistence (the extension point aedes offers for exactly
// this) and keeps, per device:
// - one stored offline session: when a persistent session of a device goes offline, the device's
//   other offline sessions are discarded (a device is one client; its live connections are
//   bounded by connections.perDevice);
// - its queued messages within quotas.queuedMessages and quotas.queuedBytes: a message over them
//   is not stored for that session (a live subscriber still gets it once, without redelivery);
// - no filter the broker refused: aedes stores every filter of a SUBSCRIBE packet in which any
//   one was granted, and would queue messages for the refused ones too.

interface Sub {
  readonly topic: string;
  readonly qos: number;
}
interface QueuedPacket {
  readonly payload?: Buffer | string;
  readonly messageId?: number;
}
interface ClientRef {
  readonly id: string;
}

/** The promise API of aedes-persistence's memory store, the part this wrapper overrides or calls. */
interface Inner {
  addSubscriptions(client: ClientRef, subs: Sub[]): Promise<void>;
  removeSubscriptions(client: ClientRef, topics: string[]): Promise<void>;
  cleanSubscriptions(client: ClientRef): Promise<void>;
  outgoingEnqueue(sub: { clientId: string }, packet: QueuedPacket): Promise<void>;
  outgoingEnqueueCombi(subs: { clientId: string }[], packet: QueuedPacket): Promise<void>;
  outgoingUpdate(client: ClientRef, packet: QueuedPacket): Promise<void>;
  outgoingClearMessageId(client: ClientRef, packet: QueuedPacket): Promise<QueuedPacket | undefined>;
  outgoingStream(client: ClientRef): Readable;
  cleanIncoming(client: ClientRef): Promise<void>;
}

/** A device's persistent session: what it holds in the persistence. */
interface Session {
  readonly clientId: string;
  readonly deviceId: string;
  live: boolean;
  readonly filters: Set<string>;
  messages: number;
  bytes: number;
}

export interface SessionStoreHooks {
  quotas(): DeviceQuotas;
  /** A message was not stored for a device's session: it is at a queue quota. */
  dropped(session: { readonly clientId: string; readonly deviceId: string }, refusal: BrokerRefusal): void;
}

const sizeOf = (p: QueuedPacket) =>
  typeof p.payload === 'string' ? Buffer.byteLength(p.payload) : (p.payload?.length ?? 0);

export class SessionStore {
  /** What aedes is given as its `persistence`. */
  readonly persistence: unknown;
  readonly #inner: Inner;
  readonly #refused = new WeakSet<object>();
  readonly #sessions = new Map<string, Session>();
  readonly #byDevice = new Map<string, Set<Session>>();

  constructor(private readonly hooks: SessionStoreHooks) {
    // The package is CommonJS whose module.exports is the factory; its typings say `export default`.
    const create = memoryPersistence as unknown as () => Inner & Record<string | symbol, unknown>;
    const inner = create();
    this.#inner = inner;
    const overrides: Partial<Record<keyof Inner, unknown>> = {
      addSubscriptions: (c: ClientRef, subs: Sub[]) => this.#add(c, subs),
      removeSubscriptions: (c: ClientRef, topics: string[]) => {
        for (const t of topics) this.#sessions.get(c.id)?.filters.delete(t);
        return inner.removeSubscriptions(c, topics);
      },
      cleanSubscriptions: (c: ClientRef) => {
        this.#sessions.get(c.id)?.filters.clear();
        return inner.cleanSubscriptions(c);
      },
      outgoingEnqueue: (sub: { clientId: string }, p: QueuedPacket) => this.#enqueue([sub], p),
      outgoingEnqueueCombi: (subs: { clientId: string }[], p: QueuedPacket) => this.#enqueue(subs, p),
      // A message kept out of a session's queue by a quota is still delivered to the session
      // while it is online; aedes then looks for it in the queue, which must not be an error.
      outgoingUpdate: (c: ClientRef, p: QueuedPacket) =>
        inner.outgoingUpdate(c, p).catch((err: Error) => {
          if (err.message !== 'no such packet') throw err;
        }),
      outgoingClearMessageId: async (c: ClientRef, p: QueuedPacket) => {
        const removed = await inner.outgoingClearMessageId(c, p);
        const s = this.#sessions.get(c.id);
        if (removed && s) {
          s.messages--;
          s.bytes -= sizeOf(removed);
        }
        return removed;
      },
    };
    this.persistence = new Proxy(inner, {
      get(target, prop) {
        if (prop in overrides) return overrides[prop as keyof Inner];
        const v = target[prop];
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
  }

  /** A device's client connected (after authentication). */
  opened(clientId: string, deviceId: string, clean: boolean): void {
    // A clean session wipes what a persistent one of that clientId left (aedes clears the
    // persistence itself as the CONNECT proceeds).
    if (clean) this.#forget(clientId);
    else (this.#sessions.get(clientId) ?? this.#track(clientId, deviceId)).live = true;
  }

  /** A device's client disconnected: a persistent session stays, the device's older offline ones go. */
  closed(clientId: string): void {
    const s = this.#sessions.get(clientId);
    if (!s) return;
    s.live = false;
    for (const other of this.#byDevice.get(s.deviceId) ?? []) {
      // The in-memory persistence does not fail; were another to, the session would stay stored.
      if (other !== s && !other.live) this.#discard(other).catch(() => undefined);
    }
  }

  /** The broker refused this entry of a SUBSCRIBE: it must never be stored. */
  refuse(sub: object): void {
    this.#refused.add(sub);
  }

  /** Filters stored for the device's sessions that are offline (they count against its quota). */
  offlineFilters(deviceId: string): number {
    let n = 0;
    for (const s of this.#byDevice.get(deviceId) ?? []) if (!s.live) n += s.filters.size;
    return n;
  }

  /** Messages and bytes queued for the device's persistent sessions. */
  queued(deviceId: string): { readonly messages: number; readonly bytes: number } {
    let messages = 0;
    let bytes = 0;
    for (const s of this.#byDevice.get(deviceId) ?? []) {
      messages += s.messages;
      bytes += s.bytes;
    }
    return { messages, bytes };
  }

  /** Persistent sessions of devices the store keeps (live or not). */
  get sessions(): number {
    return this.#sessions.size;
  }

  #track(clientId: string, deviceId: string): Session {
    const s: Session = { clientId, deviceId, live: true, filters: new Set(), messages: 0, bytes: 0 };
    this.#sessions.set(clientId, s);
    const set = this.#byDevice.get(deviceId) ?? new Set<Session>();
    set.add(s);
    this.#byDevice.set(deviceId, set);
    return s;
  }

  #forget(clientId: string): void {
    const s = this.#sessions.get(clientId);
    if (!s) return;
    this.#sessions.delete(clientId);
    const set = this.#byDevice.get(s.deviceId);
    set?.delete(s);
    if (set?.size === 0) this.#byDevice.delete(s.deviceId);
  }

  async #discard(s: Session): Promise<void> {
    this.#forget(s.clientId);
    const ref = { id: s.clientId };
    await this.#inner.cleanSubscriptions(ref);
    await this.#inner.cleanIncoming(ref);
    for await (const p of this.#inner.outgoingStream(ref)) await this.#inner.outgoingClearMessageId(ref, p);
  }

  #add(client: ClientRef, subs: Sub[]): Promise<void> {
    const kept = subs.filter((s) => !this.#refused.has(s));
    const session = this.#sessions.get(client.id);
    for (const s of kept) session?.filters.add(s.topic);
    return kept.length > 0 ? this.#inner.addSubscriptions(client, kept) : Promise.resolve();
  }

  #enqueue(subs: { clientId: string }[], packet: QueuedPacket): Promise<void> {
    const quotas = this.hooks.quotas();
    const bytes = sizeOf(packet);
    const kept = subs.filter((sub) => {
      const s = this.#sessions.get(sub.clientId);
      if (!s) return true; // not a device's session (an operator's): not bounded here
      const held = this.queued(s.deviceId);
      let refusal: BrokerRefusal | undefined;
      if (held.messages + 1 > quotas.queuedMessages)
        refusal = {
          reason: 'queued-messages',
          why: `device ${s.deviceId} has ${held.messages} messages queued, the most quotas.queuedMessages allows (${quotas.queuedMessages}); this one is not stored for ${s.clientId}`,
          code: 'quota-exceeded',
        };
      else if (held.bytes + bytes > quotas.queuedBytes)
        refusal = {
          reason: 'queued-bytes',
          why: `a ${bytes}-byte message would bring device ${s.deviceId}'s queue to ${held.bytes + bytes} bytes, over quotas.queuedBytes (${quotas.queuedBytes}); it is not stored for ${s.clientId}`,
          code: 'quota-exceeded',
        };
      if (refusal) {
        this.hooks.dropped(s, refusal);
        return false;
      }
      s.messages++;
      s.bytes += bytes;
      return true;
    });
    return kept.length > 0 ? this.#inner.outgoingEnqueueCombi(kept, packet) : Promise.resolve();
  }
}
