import { DEVICE_ID_HEX, isDeviceId, isEkHash } from '../../shared/protocol/index.ts';

// PROTOCOL.md §3: operators admit devices by EK hash or by device id (the hash's first 24 hex
// digits, which is what `vigil-gateway devices` shows). Both forms live in one allowlist; an EK
// is admitted when either its hash or its device id is listed.

/** The canonical (lowercase) allowlist entry for what an operator typed, or a TypeError. */
export function allowlistEntry(ekHashOrDeviceId: string): string {
  const s = ekHashOrDeviceId.trim().toLowerCase();
  if (isEkHash(s) || isDeviceId(s)) return s;
  throw new TypeError(
    `allowlist entry: expected an EK hash (64 hex digits) or a device id (24 hex digits), got ${JSON.stringify(ekHashOrDeviceId)}`,
  );
}

/** The entries any one of which admits this EK. */
export function entriesAdmitting(ekHash: string): [string, string] {
  const h = ekHash.toLowerCase();
  return [h, h.slice(0, DEVICE_ID_HEX)];
}
