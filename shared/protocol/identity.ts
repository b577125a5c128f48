import { createHash } from 'node:crypto';

// PROTOCOL.md §3: a device is named by its EK, so an id cannot be claimed without the TPM that
// holds the EK (the activation step proves possession).

export const DEVICE_ID_HEX = 24;
const DEVICE_ID = /^[0-9a-f]{24}$/;

export interface DeviceIdentity {
  /** Lowercase hex SHA-256 of the EK's marshalled TPMT_PUBLIC. */
  readonly ekHash: string;
  /** The first 24 hex digits of ekHash. */
  readonly deviceId: string;
}

export function deviceIdentity(ekPublicArea: Uint8Array): DeviceIdentity {
  const ekHash = createHash('sha256').update(ekPublicArea).digest('hex');
  return { ekHash, deviceId: ekHash.slice(0, DEVICE_ID_HEX) };
}

export function isDeviceId(s: string): boolean {
  return DEVICE_ID.test(s);
}

const EK_HASH = /^[0-9a-f]{64}$/;
export function isEkHash(s: string): boolean {
  return EK_HASH.test(s);
}
