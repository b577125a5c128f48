import { createHash, createHmac } from 'node:crypto';
import { Writer } from './bytes.ts';
import { HASH_SIZE, type HashName } from './constants.ts';

// TPM labels are C strings: the terminating zero is part of the KDF input (Part 1 §11.4.10.1).
function labelBytes(label: string): Uint8Array {
  const text = Buffer.from(label, 'latin1');
  return text.at(-1) === 0 ? text : Buffer.concat([text, Buffer.from([0])]);
}

function checkBits(bits: number): void {
  if (!Number.isInteger(bits) || bits <= 0 || bits > 0xffff * 8)
    throw new RangeError(`KDF output bits ${bits} out of range`);
}

// When bits is not a whole number of bytes, the TPM clears the excess high-order bits of the first byte.
function truncate(stream: Uint8Array, bits: number): Uint8Array {
  const out = stream.slice(0, Math.ceil(bits / 8));
  if (bits % 8 !== 0) out[0]! &= (1 << (bits % 8)) - 1;
  return out;
}

/** KDFa: SP 800-108 counter mode with HMAC (TPM 2.0 Part 1 §11.4.10.2). */
export function kdfa(
  hash: HashName,
  key: Uint8Array,
  label: string,
  contextU: Uint8Array,
  contextV: Uint8Array,
  bits: number,
): Uint8Array {
  checkBits(bits);
  const lbl = labelBytes(label);
  const w = new Writer();
  for (let i = 1; w.length * 8 < bits; i++) {
    const block = new Writer().u32(i).bytes(lbl).bytes(contextU).bytes(contextV).u32(bits).finish();
    w.bytes(createHmac(hash, key).update(block).digest());
  }
  return truncate(w.finish(), bits);
}

/** KDFe: SP 800-56A concatenation KDF (TPM 2.0 Part 1 §11.4.10.3). */
export function kdfe(
  hash: HashName,
  z: Uint8Array,
  label: string,
  partyU: Uint8Array,
  partyV: Uint8Array,
  bits: number,
): Uint8Array {
  checkBits(bits);
  const lbl = labelBytes(label);
  const w = new Writer();
  for (let i = 1; w.length * 8 < bits; i++) {
    w.bytes(
      createHash(hash)
        .update(new Writer().u32(i).bytes(z).bytes(lbl).bytes(partyU).bytes(partyV).finish())
        .digest(),
    );
  }
  return truncate(w.finish(), bits);
}

export function digestSize(hash: HashName): number {
  return HASH_SIZE[hash];
}
