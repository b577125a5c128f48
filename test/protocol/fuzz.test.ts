import fc from 'fast-check';
import { test } from 'uvu';
import { encodeCbor } from '../../shared/cbor/encode.ts';
import type { Encodable } from '../../shared/cbor/value.ts';
import {
  decodeClaims,
  decodeDeviceMessage,
  decodeFromDevice,
  decodeFromGateway,
  decodeGatewayMessage,
  decodeMessage,
  encodeMessage,
} from '../../shared/protocol/index.ts';
import { mutatedBytes, onlyTypedMalformed } from '../support/fuzz.ts';
import * as sample from './samples.ts';

// Seeded so that a failure reproduces: fast-check prints the seed and path of any counterexample.
const SEED = 0x5eed_0001;
const DECODERS = [
  decodeMessage,
  decodeDeviceMessage,
  decodeGatewayMessage,
  decodeFromDevice,
  decodeFromGateway,
  decodeClaims,
] as const;

const onlyTypedErrors = (bytes: Uint8Array) => onlyTypedMalformed(DECODERS, bytes);

const cborValue: fc.Arbitrary<Encodable> = fc.letrec<{ v: Encodable }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.integer({ min: -1000, max: 2 ** 40 }),
    fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n - 1n }),
    fc.string(),
    fc.boolean(),
    fc.constant(null),
    fc.uint8Array({ maxLength: 40 }),
    fc.double(),
    fc.array(tie('v'), { maxLength: 4 }),
    fc.dictionary(
      fc.constantFrom(
        'v',
        't',
        'round',
        'nonce',
        'pcrs',
        'logs',
        'sw',
        'ek',
        'body',
        'x',
        'id',
        'op',
        'rollout',
        'deadline',
        'command',
        'state',
        'want',
        'operation',
        'data',
      ),
      tie('v'),
      {
        maxKeys: 5,
      },
    ),
  ),
})).v;

const validPayloads = [...sample.ALL.map(encodeMessage)];

const mutated = mutatedBytes(validPayloads);

test('random bytes: only typed malformed errors', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (b) => onlyTypedErrors(b)),
    { seed: SEED, numRuns: 3000 },
  );
});

test('mutated valid messages: only typed malformed errors', () => {
  fc.assert(fc.property(mutated, onlyTypedErrors), { seed: SEED, numRuns: 4000 });
});

test('random well-formed CBOR with protocol-looking keys: only typed malformed errors', () => {
  fc.assert(
    fc.property(
      cborValue,
      fc.constantFrom('hello', 'challenge', 'evidence', 'result', 'error', 'command', 'report'),
      (v, t) => {
        onlyTypedErrors(encodeCbor(v));
        if (
          v instanceof Map ||
          Array.isArray(v) ||
          typeof v !== 'object' ||
          v === null ||
          v instanceof Uint8Array
        )
          return;
        onlyTypedErrors(encodeCbor({ ...v, v: 1, t }));
      },
    ),
    { seed: SEED, numRuns: 3000 },
  );
});

test.run();
