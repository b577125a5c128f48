import type { Field } from './json-fields.ts';

// The bounds on what one connection, one source address and one device may hold in the gateway
// (docs/policy.md, `connections` and `quotas`). Every resource a client can make the gateway keep
// has one here, so that no single device or address can grow the gateway's memory without limit.
// The defaults are sized for a fleet of 10,000 devices on one gateway: an honest device never
// comes near them, and 10,000 devices all at their quotas still fit an edge server's memory.

export interface ConnectionLimits {
  /**
   * Time from the TCP accept to an accepted `hello` (a device) or CONNECT (an operator). Covers the
   * TLS handshake, CONNECT and hello, so that a connection that never says who it is goes away.
   */
  readonly helloTimeoutMs: number;
  /** Largest MQTT keepalive accepted at CONNECT, s; 0 (no keepalive) is refused too. */
  readonly keepaliveMaxS: number;
  /** Live connections per device id; at the limit the oldest unattested one is closed. */
  readonly perDevice: number;
  /** Connections per source address that have not attested (devices) or authenticated (operators). */
  readonly unattestedPerAddress: number;
}

/** Per device, across its connections and its stored persistent session. */
export interface DeviceQuotas {
  /** Subscription filters under its `app/{id}/` topics (its `in` topic, one per connection, aside). */
  readonly subscriptions: number;
  /** Retained messages under its `app/{id}/` topics. */
  readonly retainedMessages: number;
  /** Payload bytes of those retained messages. */
  readonly retainedBytes: number;
  /** QoS 1/2 messages held for its persistent sessions (clean=false) until acknowledged. */
  readonly queuedMessages: number;
  /** Payload bytes of those queued messages. */
  readonly queuedBytes: number;
}

export function defaultConnectionLimits(): ConnectionLimits {
  return {
    // TLS 1.3 (2 round trips with TCP), CONNECT, SUBSCRIBE and hello: about 5 round trips, 5 s on a
    // 1 s link; an agent sends hello at once.
    helloTimeoutMs: 15_000,
    // AWS IoT Core's maximum; NAT timeouts push devices lower anyway.
    keepaliveMaxS: 1200,
    // One live connection, plus those a flaky link leaves behind until their keepalive expires.
    perDevice: 4,
    // Generous for a site of devices behind one NAT reconnecting together after a gateway restart;
    // attested connections do not count.
    unattestedPerAddress: 1000,
  };
}

export function defaultDeviceQuotas(): DeviceQuotas {
  return {
    subscriptions: 32,
    retainedMessages: 16,
    retainedBytes: 16 * 1024,
    queuedMessages: 64,
    queuedBytes: 32 * 1024,
  };
}

const MIB = 1024 * 1024;

export function parseConnectionLimits(f: Field | undefined): ConnectionLimits {
  const d = defaultConnectionLimits();
  if (!f) return d;
  const m = f.object(['helloTimeoutMs', 'keepaliveMaxS', 'perDevice', 'unattestedPerAddress']);
  return {
    helloTimeoutMs: m.get('helloTimeoutMs')?.integer(500, 300_000, 'ms') ?? d.helloTimeoutMs,
    keepaliveMaxS: m.get('keepaliveMaxS')?.integer(10, 65_535, 's') ?? d.keepaliveMaxS,
    perDevice: m.get('perDevice')?.integer(1, 100, 'connections') ?? d.perDevice,
    unattestedPerAddress:
      m.get('unattestedPerAddress')?.integer(1, 1_000_000, 'connections') ?? d.unattestedPerAddress,
  };
}

export function parseDeviceQuotas(f: Field | undefined): DeviceQuotas {
  const d = defaultDeviceQuotas();
  if (!f) return d;
  const m = f.object(['subscriptions', 'retainedMessages', 'retainedBytes', 'queuedMessages', 'queuedBytes']);
  return {
    subscriptions: m.get('subscriptions')?.integer(0, 10_000, 'filters') ?? d.subscriptions,
    retainedMessages: m.get('retainedMessages')?.integer(0, 10_000, 'messages') ?? d.retainedMessages,
    retainedBytes: m.get('retainedBytes')?.integer(0, 64 * MIB, 'bytes') ?? d.retainedBytes,
    queuedMessages: m.get('queuedMessages')?.integer(0, 100_000, 'messages') ?? d.queuedMessages,
    queuedBytes: m.get('queuedBytes')?.integer(0, 64 * MIB, 'bytes') ?? d.queuedBytes,
  };
}
