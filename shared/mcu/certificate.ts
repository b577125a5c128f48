import { encodeCbor } from '../cbor/encode.ts';
import { malformed } from '../protocol/errors.ts';
import type { Fields } from '../protocol/fields.ts';
import { DIGEST_BYTES } from '../protocol/messages.ts';
import { P256_POINT_BYTES } from './keys.ts';
import { decodeSigned, type Signed } from './signed.ts';

// The alias certificate (docs/serial.md §4): the MCU's boot ROM, holding the identity key,
// certifies the attestation key it derived for this firmware, the firmware's digest and the
// MCU's model. A COSE_Sign1 (ES256, kid = keyId of the identity key) rather than X.509: a few
// hundred bytes an MCU can build without an ASN.1 library, checked with the code that checks
// every other signed structure of the project.

export const MAX_MODEL_LENGTH = 64;

export interface AliasClaims {
  /** The MCU's model, as its ROM names it: reference firmware digests are kept per model. */
  readonly model: string;
  /** The attestation key: a raw uncompressed P-256 point. */
  readonly ak: Uint8Array;
  /** SHA-256 of the firmware image the ROM measured and started. */
  readonly fw: Uint8Array;
}

/** The payload the identity key signs. */
export function encodeAliasClaims(c: AliasClaims): Uint8Array {
  return encodeCbor({ model: c.model, ak: c.ak, fw: c.fw });
}

function readAliasClaims(f: Fields): AliasClaims {
  const model = f.text('model', MAX_MODEL_LENGTH);
  if (model.length === 0) throw malformed(`${f.path}.model: expected a model name, got empty text`);
  return { model, ak: f.bytes('ak', P256_POINT_BYTES), fw: f.bytes('fw', DIGEST_BYTES) };
}

export function decodeAliasCertificate(bytes: Uint8Array): Signed<AliasClaims> {
  return decodeSigned(bytes, 'cert', readAliasClaims);
}
