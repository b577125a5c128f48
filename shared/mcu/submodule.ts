import { isSlotName } from './claims.ts';

// How an MCU is named among the submodules of an EAR (docs/protocol.md §8): `{deviceId}/{slot}`,
// beside the device's own submodule `{deviceId}`. Neither a device id (hex) nor a slot name
// ([a-z0-9-]) holds a `/`, so a name splits back unambiguously, and it reads as what it is: a
// part of that device. The slot, not the MCU's identity, names it, so that a relying party
// finds the same submodule after an MCU was replaced (its identity then says which one it is).

const SEPARATOR = '/';

export function mcuSubmodule(deviceId: string, slot: string): string {
  return `${deviceId}${SEPARATOR}${slot}`;
}

/** The device and slot of an MCU submodule's name; undefined for any other name. */
export function parseMcuSubmodule(name: string): { deviceId: string; slot: string } | undefined {
  const at = name.indexOf(SEPARATOR);
  if (at <= 0) return undefined;
  const slot = name.slice(at + 1);
  return isSlotName(slot) ? { deviceId: name.slice(0, at), slot } : undefined;
}
