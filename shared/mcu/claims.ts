import type { Encodable } from '../cbor/value.ts';
import { decodeCborStrict, guard } from '../protocol/envelope.ts';
import { malformed } from '../protocol/errors.ts';
import { Fields } from '../protocol/fields.ts';
import { MAX_DETAIL_LENGTH, type McuIdentity, readAnsweredEvidence } from './messages.ts';

// What the lead attester carries in `evidence.body` under the key `mcus` (docs/protocol.md, MCU
// section): per serial slot, the MCU's evidence as it answered, or why there is none. The body
// is signed through the TPM quote's binding, so the MCU evidence travels on the same channel
// binding as the device's own; a gateway that does not know the key ignores it.

export const MCUS_KEY = 'mcus';
export const MAX_MCUS = 16;
const SLOT = /^[a-z0-9][a-z0-9-]{0,31}$/;

/** Why a slot has no evidence this round, as the agent saw it. */
export const MCU_FAULTS = ['absent', 'timeout', 'malformed'] as const;
export type McuFault = (typeof MCU_FAULTS)[number];

export type McuRecord =
  | ({ readonly kind: 'evidence'; readonly ev: Uint8Array } & McuIdentity)
  | { readonly kind: 'fault'; readonly fault: McuFault; readonly detail: string };

/** Slot name → record. A slot is the agent's name for a serial port (e.g. `pump`). */
export type McuClaims = ReadonlyMap<string, McuRecord>;

/** 1 to 32 of [a-z0-9-], starting with a letter or digit: it names an EAR submodule. */
export function isSlotName(s: string): boolean {
  return SLOT.test(s);
}

function readRecord(f: Fields): McuRecord {
  if (f.has('fault')) {
    return {
      kind: 'fault',
      fault: f.oneOf('fault', MCU_FAULTS),
      detail: f.text('detail', MAX_DETAIL_LENGTH),
    };
  }
  return { kind: 'evidence', ...readAnsweredEvidence(f) };
}

/** Reads `mcus` from the body's claims map; undefined when the device carries none. */
export function readMcuClaims(body: Fields): McuClaims | undefined {
  const m = body.optFields(MCUS_KEY);
  if (m === undefined) return undefined;
  const out = new Map<string, McuRecord>();
  for (const [slot] of m.entries()) {
    if (typeof slot !== 'string' || !isSlotName(slot)) {
      throw malformed(
        `${m.path}: expected slot names of 1 to 32 characters [a-z0-9-] as keys, got ${JSON.stringify(slot)}`,
      );
    }
    if (out.size === MAX_MCUS) throw malformed(`${m.path}: more than ${MAX_MCUS} MCUs`);
    out.set(slot, readRecord(m.fields(slot)));
  }
  return out;
}

/** The value of `mcus`, slots in byte order so that equal claims encode equally. */
export function writeMcuClaims(c: McuClaims): Encodable {
  const out = new Map<string, Encodable>();
  for (const slot of [...c.keys()].sort()) {
    const r = c.get(slot)!;
    out.set(
      slot,
      r.kind === 'fault' ? { fault: r.fault, detail: r.detail } : { idk: r.idk, cert: r.cert, ev: r.ev },
    );
  }
  return out;
}

/** `mcus` of an encoded body. Throws only ProtocolError `malformed`. */
export function decodeMcuClaims(body: Uint8Array): McuClaims | undefined {
  return guard(() => readMcuClaims(Fields.of(decodeCborStrict(body, 'body'), 'body')));
}
