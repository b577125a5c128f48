import { isDeviceId } from './identity.ts';

// PROTOCOL.md §1 topic names, built and parsed in one place so ACLs and clients cannot drift.

export const TOPIC_ROOT = 'vigil/v1';

export const topics = {
  out: (id: string) => `${TOPIC_ROOT}/${id}/out`,
  in: (id: string) => `${TOPIC_ROOT}/${id}/in`,
  fleet: (id: string) => `${TOPIC_ROOT}/fleet/${id}`,
  /** A rollout's state for back ends, retained (JSON); operators read it, devices never. */
  rollout: (id: string) => `${TOPIC_ROOT}/fleet/rollouts/${id}`,
  app: (id: string) => `app/${id}`,
} as const;

export type VigilTopic =
  | { readonly kind: 'out' | 'in'; readonly id: string }
  | { readonly kind: 'fleet'; readonly id: string }
  | { readonly kind: 'rollout'; readonly id: string };

/** Rollout ids as the gateway makes them (`r-` and 12 hex digits): safe in a topic level. */
export const ROLLOUT_ID = /^r-[0-9a-f]{12}$/;

/** Parses a concrete (wildcard-free) topic under vigil/v1/; undefined when it is not one of ours. */
export function parseVigilTopic(topic: string): VigilTopic | undefined {
  const parts = topic.split('/');
  if (parts.length === 5 && parts[0] === 'vigil' && parts[1] === 'v1' && parts[2] === 'fleet') {
    return parts[3] === 'rollouts' && ROLLOUT_ID.test(parts[4]!)
      ? { kind: 'rollout', id: parts[4]! }
      : undefined;
  }
  if (parts.length !== 4 || parts[0] !== 'vigil' || parts[1] !== 'v1') return undefined;
  const [, , a, b] = parts as [string, string, string, string];
  if (a === 'fleet' && isDeviceId(b)) return { kind: 'fleet', id: b };
  if ((b === 'out' || b === 'in') && isDeviceId(a)) return { kind: b, id: a };
  return undefined;
}

/** The device id an application topic `app/{id}/...` belongs to, if it is one. */
export function appTopicOwner(topic: string): string | undefined {
  const parts = topic.split('/');
  return parts[0] === 'app' && parts.length >= 2 && isDeviceId(parts[1]!) ? parts[1] : undefined;
}
