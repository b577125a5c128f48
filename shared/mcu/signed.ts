import { CoseError, decodeSign1, type Sign1 } from '../cose/sign1.ts';
import { decodeCborStrict, guard } from '../protocol/envelope.ts';
import { malformed } from '../protocol/errors.ts';
import { Fields } from '../protocol/fields.ts';

// The MCU signs two structures, its alias certificate and its evidence: both are an untagged
// COSE_Sign1 (ES256, shared/cose) whose payload is a CBOR map with text keys.

export interface Signed<T> {
  readonly sign1: Sign1;
  readonly value: T;
}

/**
 * Parses both layers, the payload with `read`; checks form, never the signature. Throws only
 * ProtocolError `malformed`, with `what` naming the structure.
 */
export function decodeSigned<T>(bytes: Uint8Array, what: string, read: (f: Fields) => T): Signed<T> {
  return guard(() => {
    let sign1: Sign1;
    try {
      sign1 = decodeSign1(bytes);
    } catch (e) {
      if (e instanceof CoseError) throw malformed(`${what}: ${e.message}`);
      throw e;
    }
    return { sign1, value: read(Fields.of(decodeCborStrict(sign1.payload, what), what)) };
  });
}
