import { encodeCbor } from '../../../shared/cbor/encode.ts';
import { decodeSign1 } from '../../../shared/cose/sign1.ts';
import { decodeEar, encodeEar } from '../../../shared/protocol/ear.ts';

// Tampered EARs, as a compromised store or a proxy on the way could serve them: the gateway's
// COSE_Sign1 with some of its parts replaced, its signature kept.

export function replaceInSign1(
  cwt: Uint8Array,
  parts: { payload?: Uint8Array; signature?: Uint8Array },
): Uint8Array {
  const m = decodeSign1(cwt);
  return encodeCbor([
    m.protectedBytes,
    new Map(),
    parts.payload ?? m.payload,
    parts.signature ?? m.signature,
  ]);
}

/** The EAR with `deviceId`'s appraisal turned affirming, without codes: a forged clean bill. */
export function forgeAffirming(cwt: Uint8Array, deviceId: string): Uint8Array {
  const claims = decodeEar(decodeSign1(cwt).payload);
  const mine = claims.submods[deviceId];
  if (!mine) throw new Error(`the EAR has no appraisal of ${deviceId}`);
  const { codes: _codes, ...rest } = mine;
  const payload = encodeEar({
    ...claims,
    submods: { ...claims.submods, [deviceId]: { ...rest, status: 'affirming' } },
  });
  return replaceInSign1(cwt, { payload });
}
