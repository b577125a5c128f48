import type { ErrorCode } from '../../shared/protocol/index.ts';
import type { ConnectionLimits, DeviceQuotas } from '../policy/limits.ts';

// What the broker enforces from the policy, read at every decision so that a reload applies at
// once, and the stable names of its refusals (the `reason` label of vigil_refusals_total).

export interface BrokerLimits {
  /** Largest payload of any PUBLISH (and of a will), bytes. */
  readonly maxPayload: number;
  readonly connections: ConnectionLimits;
  readonly quotas: DeviceQuotas;
}

export const REFUSAL_REASONS = [
  /** A PUBLISH or will payload over maxPayload. */
  'payload-too-large',
  'retained-messages',
  'retained-bytes',
  'subscriptions',
  'queued-messages',
  'queued-bytes',
  /** CONNECT with keepalive 0 or over connections.keepaliveMaxS. */
  'keepalive',
  /** No hello (or no CONNECT) within connections.helloTimeoutMs. */
  'hello-timeout',
  /** A device id at connections.perDevice: its oldest unattested connection closed, or the new one refused. */
  'device-connections',
  /** A source address at connections.unattestedPerAddress: the new connection cut. */
  'address-connections',
  /** A publish the topic rules (PROTOCOL.md §1) or gating refuse. */
  'publish-denied',
  /** A subscribe the topic rules or gating refuse. */
  'subscribe-denied',
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/** A refusal, and what the device is told of it when it is a device's own doing. */
export interface BrokerRefusal {
  readonly reason: RefusalReason;
  readonly why: string;
  /** The `error` code a device hears (within its budget); absent: the refusal is only logged. */
  readonly code?: ErrorCode;
}
