import { createHash, generateKeyPairSync } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { EarSigner, verifyEar, verifyEarCwt, verifyEarJwt } from '../../gateway/verifier/ear.ts';
import { decodeCbor } from '../../shared/cbor/decode.ts';
import { decodeSign1, rawPublicKey, toBeSigned } from '../../shared/cose/sign1.ts';
import { decodeEar, EAR_PROFILE, encodeEar } from '../../shared/protocol/ear.ts';
import { ProtocolError } from '../../shared/protocol/errors.ts';

const it = suite('EAR: CWT in results, JWT for JSON tools');

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signer = new EarSigner(privateKey);
const input = {
  deviceId: '0123456789abcdef01234567',
  status: 'affirming' as const,
  trust: { 'instance-identity': 2, executables: 2, hardware: 0 },
  codes: [],
  nonce: new Uint8Array(32).fill(7),
  issuedAt: 1_795_000_000_123,
  expires: 1_795_000_600_000,
  policyId: 'vigil-policy:0011223344556677',
  verifierBuild: '0.1.0',
};

it('the CWT payload uses the draft labels: 265 profile, 6 iat, 4 exp, 10 nonce, 1004 verifier, 266 submods', () => {
  const msg = decodeSign1(signer.sign(input));
  const claims = decodeCbor(msg.payload) as Map<number, unknown>;
  assert.equal([...claims.keys()], [265, 6, 4, 10, 1004, 266]);
  assert.is(claims.get(265), EAR_PROFILE);
  assert.is(claims.get(6), 1_795_000_000);
  assert.equal(
    claims.get(1004),
    new Map<number, string>([
      [0, 'vigil'],
      [1, '0.1.0'],
    ]),
  );
  const sub = (claims.get(266) as Map<string, Map<number | string, unknown>>).get(input.deviceId)!;
  assert.is(sub.get(1000), 2, 'affirming is trust tier 2');
  assert.equal(
    sub.get(1001),
    new Map([
      [0, 2],
      [2, 2],
    ]),
    'claims not made are absent',
  );
  assert.is(sub.get(1003), input.policyId);
  assert.is(sub.has('vigil.codes'), false);
});

it('verifies with the gateway public key (node and noble), and an altered byte fails', () => {
  const cwt = signer.sign(input);
  const ear = verifyEarCwt(cwt, publicKey);
  assert.equal(ear.submods[input.deviceId]?.status, 'affirming');
  assert.equal(ear.nonce, input.nonce);
  const msg = decodeSign1(cwt);
  const digest = createHash('sha256').update(toBeSigned(msg.protectedBytes, msg.payload)).digest();
  assert.ok(p256.verify(msg.signature, digest, rawPublicKey(publicKey), { prehash: false, lowS: false }));
  for (let i = 0; i < cwt.length; i++) {
    const bad = Uint8Array.from(cwt);
    bad[i]! ^= 0x20;
    assert.throws(() => verifyEarCwt(bad, publicKey), undefined, `byte ${i}`);
  }
  const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
  assert.throws(() => verifyEarCwt(cwt, other), /does not verify/);
});

it('the JWT carries the very same claims in the JSON serialization', () => {
  const cwt = signer.sign({ ...input, status: 'contraindicated', codes: ['sw-not-allowed'] });
  const ear = verifyEarCwt(cwt, publicKey);
  const jwt = signer.jwt(ear);
  assert.equal(verifyEarJwt(jwt, publicKey), verifyEar(cwt, publicKey));
  const json = verifyEarJwt(jwt, publicKey) as { submods: Record<string, Record<string, unknown>> };
  assert.equal(json.submods[input.deviceId], {
    'ear.status': 'contraindicated',
    'ear.trustworthiness-vector': { 'instance-identity': 2, executables: 2 },
    'ear.appraisal-policy-id': input.policyId,
    'vigil.codes': ['sw-not-allowed'],
  });
});

it('a CWT is a fraction of the JWT it stands for', () => {
  const cwt = signer.sign(input);
  const jwt = signer.jwt(verifyEarCwt(cwt, publicKey));
  assert.ok(cwt.length * 2 < jwt.length, `${cwt.length} B CWT, ${jwt.length} B JWT`);
});

it('decoding refuses what is not an EAR, as malformed', () => {
  const good = encodeEar(verifyEarCwt(signer.sign(input), publicKey));
  for (const bad of [Uint8Array.of(0xa0), good.subarray(0, good.length - 1), Uint8Array.of(0x01)]) {
    try {
      decodeEar(bad);
      assert.unreachable();
    } catch (e) {
      assert.instance(e, ProtocolError);
    }
  }
});

it.run();
