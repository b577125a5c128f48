import type { ConnectRefusal } from '../broker/broker.ts';
import type { DeviceRecord } from '../model.ts';

// Who owns a device when several gateways share a fleet, as decisions of what each gateway
// knows: pure functions, the Redis and PostgreSQL I/O elsewhere (claims.ts, the store).
//
// The gateway holding a device's attested connection owns the device: its live state, its rounds
// and its record. It says so with a claim (a Redis key holding its id, with an expiry it keeps
// refreshing while the connection lives). The same-id rule of one gateway, "a new connection
// never disturbs an attested one", then holds across gateways: a connection of a device claimed
// by another gateway is refused at CONNECT.

export interface ConnectInput {
  readonly deviceId: string;
  readonly me: string;
  /** Whether the control bus can be asked now. */
  readonly busUp: boolean;
  /** Whether, since the bus last came up, this gateway checked that Redis kept its claims. */
  readonly checked: boolean;
  /**
   * Until this Unix ms new connections wait: Redis came back empty and the gateways are still
   * claiming again what they hold (0: not holding off).
   */
  readonly holdOffUntil: number;
  readonly now: number;
  /** The gateway whose claim the device has, if any (read just now). */
  readonly holder: string | null;
}

/** Whether a device may connect to this gateway; a refusal says why and when to retry. */
export function connectDecision(i: ConnectInput): ConnectRefusal | undefined {
  if (!i.busUp)
    return {
      returnCode: 3,
      reason: `cannot check where device ${i.deviceId} is attested: the control bus (Redis) is unreachable; retry later`,
    };
  if (!i.checked)
    return {
      returnCode: 3,
      reason: 'the control bus (Redis) just came back and its claims are being checked; retry in a moment',
    };
  if (i.now < i.holdOffUntil)
    return {
      returnCode: 3,
      reason: `the control bus restarted empty; gateways are claiming their devices again for ${i.holdOffUntil - i.now} ms more; retry then`,
    };
  if (i.holder !== null && i.holder !== i.me)
    return {
      returnCode: 2,
      reason: `device ${i.deviceId} is attested on gateway ${i.holder}: a second connection is refused while that one lives (its claim lapses soon after it ends); retry then`,
    };
  return undefined;
}

/**
 * Whether this gateway turns a device stale when its expiry comes due: the gateway that wrote the
 * device's record last (its owner, or its last owner), or any gateway once that one is gone. Two
 * gateways doing it at once is harmless (the store's version check keeps one), only wasteful.
 */
export function mayLapse(lastWriter: string | undefined, me: string, live: ReadonlySet<string>): boolean {
  return lastWriter === undefined || lastWriter === me || !live.has(lastWriter);
}

function sameLabels(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => b[k] === a[k]);
}

/**
 * A device write refused because another gateway wrote the device since: what to write again,
 * given the row that won. The owner keeps what attestation established (its own record);
 * anyone else takes the stored row's. Labels are the operator's: those of the refused write when
 * it changed them, else the stored row's. Undefined: nothing to write, the stored row stands.
 */
export function resolveConflict(
  stored: DeviceRecord,
  refused: DeviceRecord | undefined,
  baseLabels: Readonly<Record<string, string>> | undefined,
  owned: boolean,
): DeviceRecord | undefined {
  if (!refused) return undefined;
  const labelsChanged = baseLabels !== undefined && !sameLabels(refused.labels, baseLabels);
  if (!owned && !labelsChanged) return undefined;
  const merged = { ...(owned ? refused : stored), labels: labelsChanged ? refused.labels : stored.labels };
  return owned || !sameLabels(merged.labels, stored.labels) ? merged : undefined;
}
