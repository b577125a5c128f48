import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CborError, decodeCbor } from '../../shared/cbor/decode.ts';
import { encodeCbor } from '../../shared/cbor/encode.ts';
import type { CborValue, Encodable } from '../../shared/cbor/value.ts';

const hex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

// RFC 8949 Appendix A examples: an outside reference for both directions.
const VECTORS: [Encodable, string][] = [
  [0, '00'],
  [23, '17'],
  [24, '1818'],
  [1000, '1903e8'],
  [1000000, '1a000f4240'],
  [1000000000000, '1b000000e8d4a51000'],
  [18446744073709551615n, '1bffffffffffffffff'],
  [-1, '20'],
  [-1000, '3903e7'],
  [-18446744073709551616n, '3bffffffffffffffff'],
  [false, 'f4'],
  [true, 'f5'],
  [null, 'f6'],
  [new Uint8Array([1, 2, 3, 4]), '4401020304'],
  ['IETF', '6449455446'],
  ['\u00fc', '62c3bc'],
  [[1, [2, 3], [4, 5]], '8301820203820405'],
  [{ a: 1, b: [2, 3] }, 'a26161016162820203'],
  [
    new Map([
      [1, 2],
      [3, 4],
    ]),
    'a201020304',
  ],
];

test('RFC 8949 vectors encode to the listed bytes and decode back', () => {
  for (const [value, bytes] of VECTORS) {
    assert.is(toHex(encodeCbor(value)), bytes, `encode ${String(value)}`);
    const back = decodeCbor(hex(bytes));
    assert.is(toHex(encodeCbor(back as Encodable)), bytes, `decode ${bytes}`);
  }
});

test('a Unix time in milliseconds stays an integer, not a float', () => {
  const t = 1795000000000;
  const b = encodeCbor(t);
  assert.is(b[0], 0x1b);
  assert.is(decodeCbor(b), t);
});

test('floats of every width decode (RFC 8949 vectors)', () => {
  assert.is(decodeCbor(hex('f93e00')), 1.5);
  assert.is(decodeCbor(hex('f97bff')), 65504);
  assert.is(decodeCbor(hex('fa47c35000')), 100000);
  assert.is(decodeCbor(hex('fb3ff199999999999a')), 1.1);
  assert.is(decodeCbor(hex('f90001')), 2 ** -24);
});

function rejects(bytes: string, fragment: string) {
  try {
    decodeCbor(hex(bytes));
  } catch (e) {
    assert.instance(e, CborError);
    assert.match((e as Error).message, fragment);
    return;
  }
  assert.unreachable(`${bytes} decoded`);
}

test('refuses what vigil/1 does not use, naming it', () => {
  rejects('c11a514b67b0', 'tag');
  rejects('5f42010243030405ff', 'indefinite');
  rejects('9fff', 'indefinite');
  rejects('f7', 'simple value 23');
  rejects('a2616101616102', 'duplicate map key "a"');
  rejects('a1f501', 'map keys must be text or integers');
  rejects('62c328', 'UTF-8');
  rejects('0000', 'trailing');
  rejects('5a00000010', 'exceeds');
  rejects('1c', 'reserved');
  rejects('9a7fffffff', 'exceeds');
});

test('nesting is bounded without recursion beyond the limit', () => {
  const deep = (n: number) => hex('81'.repeat(n - 1) + '00');
  assert.ok(decodeCbor(deep(16)));
  rejects('81'.repeat(16) + '00', 'nesting deeper than 16');
  // A hostile depth far past the stack: still a clean error.
  assert.throws(
    () => decodeCbor(deep(200000)),
    (e: unknown) => e instanceof CborError,
  );
});

test('byte strings decode as views of the input, without copying', () => {
  const input = hex('43010203');
  const v = decodeCbor(input) as Uint8Array;
  assert.is(v.buffer, input.buffer);
  assert.equal([...v], [1, 2, 3]);
});

test('integers beyond 2^53 come back as bigint, never rounded', () => {
  const v: CborValue = decodeCbor(hex('1b0020000000000001'));
  assert.is(v, 9007199254740993n);
});

test.run();
