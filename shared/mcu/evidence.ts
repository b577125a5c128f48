import { encodeCbor } from '../cbor/encode.ts';
import type { Fields } from '../protocol/fields.ts';
import { CHALLENGE_BYTES } from './challenge.ts';
import { decodeSigned, type Signed } from './signed.ts';

// What the MCU's firmware signs with its attestation key each round: the round's challenge.
// Nothing else is needed: the attestation key exists only under the firmware the certificate
// names, so a signature by it is also the firmware claim (DICE's implicit attestation).

export interface McuEvidenceClaims {
  readonly challenge: Uint8Array;
}

export function encodeEvidenceClaims(c: McuEvidenceClaims): Uint8Array {
  return encodeCbor({ challenge: c.challenge });
}

function readEvidenceClaims(f: Fields): McuEvidenceClaims {
  return { challenge: f.bytes('challenge', CHALLENGE_BYTES) };
}

export function decodeMcuEvidence(bytes: Uint8Array): Signed<McuEvidenceClaims> {
  return decodeSigned(bytes, 'ev', readEvidenceClaims);
}
