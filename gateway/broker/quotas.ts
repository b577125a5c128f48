import type { DeviceQuotas } from '../policy/limits.ts';
import type { BrokerRefusal } from './limits.ts';

// What each device holds in the broker, counted against its quotas: the retained messages under
// its `app/{id}/` topics and its subscription filters. Decisions only, no broker in sight; the
// broker asks before it accepts and tells after it changed something.

const over = (reason: BrokerRefusal['reason'], why: string): BrokerRefusal => ({
  reason,
  why,
  code: 'quota-exceeded',
});

/**
 * Retained messages by owning device: the broker keeps one per topic, and an empty payload
 * deletes it, so a device's footprint is the sum over its topics.
 */
export class RetainedLedger {
  readonly #byDevice = new Map<string, Map<string, number>>();

  /**
   * Records a retained message of `bytes` on `topic` under `deviceId`'s topics, or refuses it
   * when `enforce` and it would take the device over a quota (nothing recorded then).
   */
  retain(
    deviceId: string,
    topic: string,
    bytes: number,
    quotas: DeviceQuotas,
    enforce: boolean,
  ): BrokerRefusal | undefined {
    const topics = this.#byDevice.get(deviceId) ?? new Map<string, number>();
    if (bytes === 0) {
      topics.delete(topic);
      if (topics.size === 0) this.#byDevice.delete(deviceId);
      return undefined;
    }
    const replaced = topics.get(topic);
    const count = topics.size + (replaced === undefined ? 1 : 0);
    let total = bytes - (replaced ?? 0);
    for (const b of topics.values()) total += b;
    if (enforce && count > quotas.retainedMessages)
      return over(
        'retained-messages',
        `device ${deviceId} holds ${topics.size} retained messages, the most quotas.retainedMessages allows (${quotas.retainedMessages}): clear one (an empty retained payload) first`,
      );
    if (enforce && total > quotas.retainedBytes)
      return over(
        'retained-bytes',
        `a retained ${bytes}-byte payload on ${topic} would bring device ${deviceId} to ${total} retained bytes, over quotas.retainedBytes (${quotas.retainedBytes})`,
      );
    topics.set(topic, bytes);
    this.#byDevice.set(deviceId, topics);
    return undefined;
  }

  /** Retained messages and bytes held for a device. */
  of(deviceId: string): { readonly messages: number; readonly bytes: number } {
    const topics = this.#byDevice.get(deviceId);
    let bytes = 0;
    for (const b of topics?.values() ?? []) bytes += b;
    return { messages: topics?.size ?? 0, bytes };
  }
}

/**
 * Subscription filters per device: those granted to its live sessions, plus those its stored
 * persistent session keeps while offline (told by the session store).
 */
export class SubscriptionLedger<S extends object> {
  readonly #live = new Map<string, Map<S, Set<string>>>();

  constructor(
    /** Filters kept by the device's offline persistent session. */
    private readonly offline: (deviceId: string) => number,
  ) {}

  /** Grants `filter` to a session of `deviceId`, or refuses it over the quota (nothing recorded). */
  subscribe(deviceId: string, session: S, filter: string, quotas: DeviceQuotas): BrokerRefusal | undefined {
    const sessions = this.#live.get(deviceId) ?? new Map<S, Set<string>>();
    const filters = sessions.get(session) ?? new Set<string>();
    if (filters.has(filter)) return undefined;
    const held = this.count(deviceId);
    if (held + 1 > quotas.subscriptions)
      return over(
        'subscriptions',
        `device ${deviceId} holds ${held} subscriptions, the most quotas.subscriptions allows (${quotas.subscriptions}): unsubscribe first`,
      );
    filters.add(filter);
    sessions.set(session, filters);
    this.#live.set(deviceId, sessions);
    return undefined;
  }

  unsubscribe(deviceId: string, session: S, filters: readonly string[]): void {
    const held = this.#live.get(deviceId)?.get(session);
    for (const f of filters) held?.delete(f);
  }

  /** The session ended: its live filters no longer count (a stored session's are counted as offline). */
  closed(deviceId: string, session: S): void {
    const sessions = this.#live.get(deviceId);
    sessions?.delete(session);
    if (sessions?.size === 0) this.#live.delete(deviceId);
  }

  count(deviceId: string): number {
    let n = this.offline(deviceId);
    for (const filters of this.#live.get(deviceId)?.values() ?? []) n += filters.size;
    return n;
  }
}
