import { createHash, createHmac, hkdfSync } from 'node:crypto';
import { DIGEST_BYTES } from '../protocol/messages.ts';

// DICE layering as a Vigil MCU does it (docs/serial.md §4; TCG DICE Layering Architecture).
// The boot ROM holds the Unique Device Secret (UDS). It derives the identity key from the UDS
// alone, so the identity outlives firmware updates; it measures the firmware, mixes the digest
// into a Compound Device Identifier (CDI) and derives the attestation key from the CDI, so other
// firmware gets another attestation key and cannot sign as this one. The ROM then certifies the
// attestation key and the digest with the identity key, and hides UDS and identity key before
// the firmware runs. Only derivations here: the signing happens where the keys live.

export const UDS_BYTES = 32;
const LABEL = 'vigil-mcu/1';

/** Order of the P-256 group. */
const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;

function checkUds(uds: Uint8Array): void {
  if (uds.length !== UDS_BYTES) {
    throw new RangeError(`the device secret (UDS) must be ${UDS_BYTES} bytes, got ${uds.length}`);
  }
}

/**
 * A P-256 private scalar from key material: 48 bytes of HKDF-SHA256 (salt "vigil-mcu/1"), reduced
 * as FIPS 186-5 A.2.1 does (mod n-1, plus 1). The 128 extra bits make the bias negligible, and
 * no retry loop means an MCU derives the key in constant time.
 */
function p256Scalar(ikm: Uint8Array, info: string): Uint8Array {
  const okm = new Uint8Array(hkdfSync('sha256', ikm, LABEL, info, 48));
  const d = (BigInt(`0x${Buffer.from(okm).toString('hex')}`) % (P256_N - 1n)) + 1n;
  return new Uint8Array(Buffer.from(d.toString(16).padStart(64, '0'), 'hex'));
}

/** SHA-256 of the firmware image, as the ROM measures it before running it. */
export function firmwareDigest(image: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(image).digest());
}

/** The identity key's private scalar (32 bytes, big-endian): from the UDS alone. */
export function identityScalar(uds: Uint8Array): Uint8Array {
  checkUds(uds);
  return p256Scalar(uds, 'identity');
}

/** CDI = HMAC-SHA256(key = UDS, "vigil-mcu/1 cdi" || firmware digest). */
export function compoundDeviceIdentifier(uds: Uint8Array, fwDigest: Uint8Array): Uint8Array {
  checkUds(uds);
  if (fwDigest.length !== DIGEST_BYTES) {
    throw new RangeError(`a firmware digest is ${DIGEST_BYTES} bytes (SHA-256), got ${fwDigest.length}`);
  }
  return new Uint8Array(createHmac('sha256', uds).update(`${LABEL} cdi`).update(fwDigest).digest());
}

/** The attestation key's private scalar: from the CDI, so from the UDS and the firmware. */
export function attestationScalar(uds: Uint8Array, fwDigest: Uint8Array): Uint8Array {
  return p256Scalar(compoundDeviceIdentifier(uds, fwDigest), 'attestation');
}
