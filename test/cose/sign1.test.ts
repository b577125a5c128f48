import { createHash, generateKeyPairSync } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { p256 } from '@noble/curves/nist.js';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeCbor } from '../../shared/cbor/decode.ts';
import { encodeCbor } from '../../shared/cbor/encode.ts';
import {
  COSE_ALG,
  CoseError,
  decodeSign1,
  keyId,
  rawPublicKey,
  signSign1,
  toBeSigned,
  verifySign1,
} from '../../shared/cose/sign1.ts';

const it = suite('COSE_Sign1');

const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ed = generateKeyPairSync('ed25519');
const payload = encodeCbor({ name: 'fw', version: '1.2.3' });

it('ES256: signs, verifies, and an independent implementation (noble, lowS off) agrees', () => {
  const bytes = signSign1(ec.privateKey, payload);
  const msg = decodeSign1(bytes);
  assert.is(msg.alg, COSE_ALG.ES256);
  assert.equal(msg.kid, keyId(ec.publicKey));
  assert.ok(verifySign1(msg, ec.publicKey));
  const tbs = toBeSigned(msg.protectedBytes, msg.payload);
  const digest = createHash('sha256').update(tbs).digest();
  assert.ok(
    p256.verify(msg.signature, digest, rawPublicKey(ec.publicKey), { prehash: false, lowS: false }),
    'noble verifies the same Sig_structure',
  );
});

it('EdDSA: signs, verifies, and noble agrees', () => {
  const msg = decodeSign1(signSign1(ed.privateKey, payload));
  assert.is(msg.alg, COSE_ALG.EdDSA);
  assert.ok(verifySign1(msg, ed.publicKey));
  assert.ok(
    ed25519.verify(msg.signature, toBeSigned(msg.protectedBytes, msg.payload), rawPublicKey(ed.publicKey)),
  );
});

it('the wire form is [protected {1: alg, 4: kid}, {}, payload, signature], untagged', () => {
  const bytes = signSign1(ed.privateKey, payload);
  assert.is(bytes[0], 0x84, 'an untagged array of 4');
  const [prot, unprot] = decodeCbor(bytes) as [Uint8Array, Map<number, unknown>];
  assert.equal(
    decodeCbor(prot),
    new Map<number, unknown>([
      [1, -8],
      [4, keyId(ed.publicKey)],
    ]),
  );
  assert.is(unprot.size, 0);
  assert.is(keyId(ed.publicKey).length, 8);
  assert.is(rawPublicKey(ed.publicKey).length, 32);
  assert.is(rawPublicKey(ec.publicKey).length, 65);
});

it('an altered byte anywhere fails verification or decoding', () => {
  const bytes = signSign1(ec.privateKey, payload);
  for (let i = 0; i < bytes.length; i++) {
    const bad = Uint8Array.from(bytes);
    bad[i]! ^= 0x01;
    let ok = false;
    try {
      ok = verifySign1(decodeSign1(bad), ec.publicKey);
    } catch (e) {
      assert.instance(e, CoseError);
    }
    assert.not.ok(ok, `byte ${i} flipped`);
  }
});

it('another key, or a key of the other algorithm, does not verify', () => {
  const msg = decodeSign1(signSign1(ec.privateKey, payload));
  assert.not.ok(verifySign1(msg, generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey));
  assert.not.ok(verifySign1(msg, ed.publicKey));
  const edMsg = decodeSign1(signSign1(ed.privateKey, payload));
  assert.not.ok(verifySign1(edMsg, ec.publicKey));
});

it('refuses what is not our form, with a CoseError that says what', () => {
  const cases: [Uint8Array, RegExp][] = [
    [encodeCbor([1, 2, 3]), /array of 4/],
    [Uint8Array.of(0xd2, ...signSign1(ec.privateKey, payload)), /tag/],
    [encodeCbor([encodeCbor(new Map([[1, -35]])), new Map(), payload, new Uint8Array(64)]), /alg -35/],
    [encodeCbor([encodeCbor(new Map([[1, -7]])), new Map(), payload, new Uint8Array(64)]), /kid/],
    [
      encodeCbor([
        encodeCbor(
          new Map<number, number | Uint8Array>([
            [1, -7],
            [4, Uint8Array.of(1)],
          ]),
        ),
        new Map(),
        null,
        new Uint8Array(64),
      ]),
      /attached/,
    ],
    [
      encodeCbor([
        encodeCbor(
          new Map<number, number | Uint8Array>([
            [1, -7],
            [4, Uint8Array.of(1)],
          ]),
        ),
        new Map(),
        payload,
        new Uint8Array(70),
      ]),
      /64 bytes/,
    ],
  ];
  for (const [bytes, why] of cases) {
    try {
      decodeSign1(bytes);
      assert.unreachable('decoded');
    } catch (e) {
      assert.instance(e, CoseError);
      assert.match((e as Error).message, why);
    }
  }
});

it('a key that cannot sign COSE here is named in the error', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
  assert.throws(() => signSign1(rsa.privateKey, payload), /rsa key cannot sign COSE/);
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  assert.throws(() => signSign1(p384.privateKey, payload), /secp384r1/);
});

it.run();
