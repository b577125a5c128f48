import { hex } from './constants.ts';

// TPM 2.0 Part 2 §6.6. Format-one codes carry the error in bits 0-5 and say which handle,
// parameter or session was at fault in bits 6-11; format-zero codes are plain numbers.
const FMT1: Readonly<Record<number, string>> = {
  1: 'ASYMMETRIC',
  2: 'ATTRIBUTES',
  3: 'HASH',
  4: 'VALUE',
  5: 'HIERARCHY',
  7: 'KEY_SIZE',
  8: 'MGF',
  9: 'MODE',
  10: 'TYPE',
  11: 'HANDLE',
  12: 'KDF',
  13: 'RANGE',
  14: 'AUTH_FAIL',
  15: 'NONCE',
  16: 'PP',
  18: 'SCHEME',
  21: 'SIZE',
  22: 'SYMMETRIC',
  23: 'TAG',
  24: 'SELECTOR',
  26: 'INSUFFICIENT',
  27: 'SIGNATURE',
  28: 'KEY',
  29: 'POLICY_FAIL',
  31: 'INTEGRITY',
  32: 'TICKET',
  33: 'RESERVED_BITS',
  34: 'BAD_AUTH',
  35: 'EXPIRED',
  36: 'POLICY_CC',
  37: 'BINDING',
  38: 'CURVE',
  39: 'ECC_POINT',
};

const VER1: Readonly<Record<number, string>> = {
  0: 'INITIALIZE',
  1: 'FAILURE',
  3: 'SEQUENCE',
  11: 'PRIVATE',
  25: 'HMAC',
  32: 'DISABLED',
  33: 'EXCLUSIVE',
  36: 'AUTH_TYPE',
  37: 'AUTH_MISSING',
  38: 'POLICY',
  39: 'PCR',
  40: 'PCR_CHANGED',
  45: 'UPGRADE',
  46: 'TOO_MANY_CONTEXTS',
  47: 'AUTH_UNAVAILABLE',
  48: 'REBOOT',
  49: 'UNBALANCED',
  66: 'COMMAND_SIZE',
  67: 'COMMAND_CODE',
  68: 'AUTHSIZE',
  69: 'AUTH_CONTEXT',
  70: 'NV_RANGE',
  71: 'NV_SIZE',
  72: 'NV_LOCKED',
  73: 'NV_AUTHORIZATION',
  74: 'NV_UNINITIALIZED',
  75: 'NV_SPACE',
  76: 'NV_DEFINED',
  80: 'BAD_CONTEXT',
  81: 'CPHASH',
  82: 'PARENT',
  83: 'NEEDS_TEST',
  84: 'NO_RESULT',
  85: 'SENSITIVE',
};

const WARN: Readonly<Record<number, string>> = {
  1: 'CONTEXT_GAP',
  2: 'OBJECT_MEMORY',
  3: 'SESSION_MEMORY',
  4: 'MEMORY',
  5: 'SESSION_HANDLES',
  6: 'OBJECT_HANDLES',
  7: 'LOCALITY',
  8: 'YIELDED',
  9: 'CANCELED',
  10: 'TESTING',
  32: 'NV_RATE',
  33: 'LOCKOUT',
  34: 'RETRY',
  35: 'NV_UNAVAILABLE',
};

export const TPM_RC = {
  SUCCESS: 0x000,
  INITIALIZE: 0x100,
  HANDLE: 0x08b,
  OBJECT_MEMORY: 0x902,
  YIELDED: 0x908,
  TESTING: 0x90a,
  RETRY: 0x922,
} as const;

/** Strips the handle/parameter/session number from a format-one code so it can be compared. */
export function rcBase(rc: number): number {
  return rc & 0x80 ? rc & 0xbf : rc;
}

/** A response code as a name a human can search for, e.g. `TPM_RC_VALUE (0x1c4): parameter 1`. */
export function rcName(rc: number): string {
  const code = hex(rc >>> 0);
  if (rc === 0) return `TPM_RC_SUCCESS (${code})`;
  if (rc & 0x80) {
    const name = FMT1[rc & 0x3f] ?? `unknown format-one error ${hex(rc & 0x3f)}`;
    const n = (rc >>> 8) & 0xf;
    const where = rc & 0x40 ? `parameter ${n}` : n & 0x8 ? `session ${n & 0x7}` : `handle ${n & 0x7}`;
    return `TPM_RC_${name} (${code}): ${where}`;
  }
  if (!(rc & 0x100)) return `TPM 1.2 response code (${code})`;
  if (rc & 0x400) return `vendor-specific response code (${code})`;
  const number = rc & 0x7f;
  if (rc & 0x800) {
    if (number >= 0x10 && number <= 0x16) return `TPM_RC_REFERENCE_H${number - 0x10} (${code})`;
    if (number >= 0x18 && number <= 0x1e) return `TPM_RC_REFERENCE_S${number - 0x18} (${code})`;
    return `TPM_RC_${WARN[number] ?? 'unknown warning'} (${code})`;
  }
  return `TPM_RC_${VER1[number] ?? 'unknown error'} (${code})`;
}
