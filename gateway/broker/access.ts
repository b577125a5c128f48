import { appTopicOwner, parseVigilTopic, TOPIC_ROOT } from '../../shared/protocol/index.ts';

// PROTOCOL.md §1 as decisions: who may publish, subscribe and receive what. Pure functions of
// the peer and the topic, so every rule is testable without a broker and one place decides.

export type Peer =
  | {
      readonly kind: 'device';
      readonly deviceId: string;
      /** Until this Unix ms the connection's latest appraisal lets app traffic through. */
      readonly trustedUntil: number;
    }
  | { readonly kind: 'operator' };

export type Decision = { readonly ok: true } | { readonly ok: false; readonly why: string };

const OK: Decision = { ok: true };
const no = (why: string): Decision => ({ ok: false, why });

/** Gating: a connection is trusted only while its own latest appraisal is good and fresh. */
export function trusted(peer: Peer, now: number): boolean {
  return peer.kind === 'operator' || now < peer.trustedUntil;
}

export function mayPublish(peer: Peer, topic: string, retain: boolean, now: number): Decision {
  if (topic.startsWith(`${TOPIC_ROOT}/`) || topic === TOPIC_ROOT) {
    if (retain) return no(`retained messages on ${TOPIC_ROOT}/# are refused`);
    const t = parseVigilTopic(topic);
    if (peer.kind === 'device' && t?.kind === 'out' && t.id === peer.deviceId) return OK;
    return no(`only a device may publish, and only to its own ${TOPIC_ROOT}/{id}/out`);
  }
  if (topic.startsWith('$')) return no('$ topics are reserved to the broker');
  const owner = appTopicOwner(topic);
  if (peer.kind === 'operator')
    return topic.startsWith('app/') ? OK : no('operators publish under app/ only');
  if (owner !== peer.deviceId) return no(`a device publishes only under app/${peer.deviceId}/`);
  return trusted(peer, now) ? OK : no('posture is not fresh and affirming on this connection: attest first');
}

/** A filter stays inside `prefix` when no wildcard can reach above it. */
function within(filter: string, prefix: string): boolean {
  return filter.startsWith(`${prefix}/`) && !filter.slice(0, prefix.length).includes('+');
}

export function maySubscribe(peer: Peer, filter: string, now: number): Decision {
  if (peer.kind === 'operator') {
    if (within(filter, 'app') || within(filter, `${TOPIC_ROOT}/fleet`)) return OK;
    return no(`operators subscribe under app/ and ${TOPIC_ROOT}/fleet/ only`);
  }
  const t = parseVigilTopic(filter);
  if (t?.kind === 'in' && t.id === peer.deviceId) return OK;
  if (filter === `app/${peer.deviceId}` || within(filter, `app/${peer.deviceId}`)) {
    return trusted(peer, now)
      ? OK
      : no('posture is not fresh and affirming on this connection: attest first');
  }
  return no(`a device subscribes only to ${TOPIC_ROOT}/${peer.deviceId}/in and under app/${peer.deviceId}/`);
}

/**
 * Whether a message may be delivered to this peer now. `direct` says the gateway addressed the
 * message to exactly this connection; `in` messages travel no other way.
 */
export function mayDeliver(peer: Peer, topic: string, direct: boolean, now: number): boolean {
  const t = parseVigilTopic(topic);
  if (peer.kind === 'operator')
    return t === undefined ? topic.startsWith('app/') : t.kind === 'fleet' || t.kind === 'rollout';
  if (t !== undefined) return t.kind === 'in' && t.id === peer.deviceId && direct;
  return trusted(peer, now) && appTopicOwner(topic) === peer.deviceId;
}
