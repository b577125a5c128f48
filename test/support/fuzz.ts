import fc from 'fast-check';
import { ProtocolError } from '../../shared/protocol/errors.ts';

// What the decoder fuzz tests share: the property (only a typed `malformed` may come out) and
// the inputs that find most (valid encodings with a few bytes changed, inserted, deleted, cut).

/** Runs every decoder on `bytes`; throws if any fails otherwise than with `malformed`. */
export function onlyTypedMalformed(
  decoders: readonly ((bytes: Uint8Array) => unknown)[],
  bytes: Uint8Array,
): void {
  for (const decode of decoders) {
    try {
      decode(bytes);
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw new Error(`non-protocol error escaped: ${String(e)}`);
      if (e.code !== 'malformed') throw new Error(`decoding gave ${e.code}, expected malformed`);
      // The envelope turns unexpected exceptions into this detail; seeing it means a decoder bug.
      if (e.detail.includes('could not be decoded')) throw new Error(`internal failure: ${e.detail}`);
    }
  }
}

/** Valid encodings with 1 to 6 byte edits, and sometimes cut short. */
export function mutatedBytes(valid: readonly Uint8Array[]): fc.Arbitrary<Uint8Array> {
  return fc
    .record({
      base: fc.constantFrom(...valid),
      edits: fc.array(
        fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('set', 'insert', 'delete')),
        { minLength: 1, maxLength: 6 },
      ),
      cut: fc.option(fc.nat(), { nil: undefined }),
    })
    .map(({ base, edits, cut }) => {
      const bytes = [...base];
      for (const [at, value, op] of edits) {
        const i = at % (bytes.length + 1);
        if (op === 'set' && i < bytes.length) bytes[i] = value;
        else if (op === 'insert') bytes.splice(i, 0, value);
        else bytes.splice(i, 1);
      }
      return new Uint8Array(cut === undefined ? bytes : bytes.slice(0, cut % (bytes.length + 1)));
    });
}
