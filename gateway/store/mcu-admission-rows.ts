import { isIdentityHash } from '../../shared/mcu/keys.ts';
import { isDeviceId } from '../../shared/protocol/index.ts';
import type { McuAdmission } from '../mcus/model.ts';

// MCU admissions ↔ rows (tables.ts MCU_ADMISSIONS). A malformed identity or device id is refused
// here, before any engine stores it: an entry that can never match would admit nothing, silently.

export interface McuAdmissionRow {
  identity: string;
  device_id: string | null;
  note: string | null;
  admitted_at: number;
}

export function mcuAdmissionToRow(a: McuAdmission): McuAdmissionRow {
  if (!isIdentityHash(a.identity)) {
    throw new TypeError(
      `MCU admission: identity: expected 64 lowercase hex digits (SHA-256 of the identity key), got ${JSON.stringify(a.identity)}`,
    );
  }
  if (a.device !== undefined && !isDeviceId(a.device)) {
    throw new TypeError(
      `MCU admission ${a.identity}: device: expected a device id (24 lowercase hex digits), got ${JSON.stringify(a.device)}`,
    );
  }
  return {
    identity: a.identity,
    device_id: a.device ?? null,
    note: a.note ?? null,
    admitted_at: a.admittedAt,
  };
}

export function mcuAdmissionFromRow(r: McuAdmissionRow): McuAdmission {
  return {
    identity: r.identity,
    ...(r.device_id !== null && { device: r.device_id }),
    ...(r.note !== null && { note: r.note }),
    admittedAt: r.admitted_at,
  };
}
