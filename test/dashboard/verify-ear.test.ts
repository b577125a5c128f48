import { generateKeyPairSync } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { RoundView } from '../../gateway/api/views.ts';
import { checkEar, type EarKey } from '../../gateway/dashboard/app/ear/verify-ear.ts';
import { EarSigner } from '../../gateway/verifier/ear.ts';
import { decodeSign1, rawPublicKey, toBeSigned } from '../../shared/cose/sign1.ts';
import { forgeAffirming, replaceInSign1 } from './support/forge-ear.ts';

// The dashboard's in-browser EAR check, run here on Node against EARs the gateway's own signer
// makes: it passes on what was signed, and fails on each way of changing it.

const it = suite('EAR check of the dashboard');

const DEVICE = '0123456789abcdef01234567';
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signer = new EarSigner(privateKey);
const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64url');
const jwk = (s: EarSigner) => s.publicKey().export({ format: 'jwk' }) as Omit<EarKey, 'kid'>;
const key: EarKey = { ...jwk(signer), kid: b64(signer.kid) };
const round = {
  status: 'contraindicated',
  codes: ['sw-not-allowed'],
} as unknown as RoundView;

const cwt = signer.sign({
  deviceId: DEVICE,
  status: 'contraindicated',
  trust: { executables: 33 },
  codes: ['sw-not-allowed'],
  nonce: new Uint8Array(32).fill(9),
  issuedAt: 1_795_000_000_000,
  expires: 1_795_000_600_000,
  policyId: 'vigil-policy:00',
  verifierBuild: '0.1.0',
});

const rebuild = (parts: { signature: Uint8Array }) => b64(replaceInSign1(cwt, parts));

it('verifies what the gateway signed, and finds the claims match the round', () => {
  const c = checkEar(b64(cwt), key, round, DEVICE);
  assert.ok(c.ok, JSON.stringify(c));
  if (c.ok) {
    assert.equal(c.mismatches, []);
    assert.is(c.ear.submods[DEVICE]?.status, 'contraindicated');
  }
});

it('a changed claim (contraindicated made affirming) fails, and still shows what it says', () => {
  const c = checkEar(b64(forgeAffirming(cwt, DEVICE)), key, round, DEVICE);
  assert.is(c.ok, false);
  if (!c.ok) {
    assert.match(c.reason, /signature does not verify/);
    assert.is(c.ear?.submods[DEVICE]?.status, 'affirming');
  }
});

it('a high-S signature (as Node and TPMs make half the time) verifies: lowS is off', () => {
  const m = decodeSign1(cwt);
  const sig = p256.Signature.fromBytes(m.signature);
  const other = new p256.Signature(sig.r, p256.Point.CURVE().n - sig.s);
  const high = sig.hasHighS() ? sig : other;
  const tbs = toBeSigned(m.protectedBytes, m.payload);
  const pub = rawPublicKey(signer.publicKey());
  assert.is(p256.verify(high.toBytes(), tbs, pub), false, "noble's default (lowS) refuses it");
  const c = checkEar(rebuild({ signature: high.toBytes() }), key, round, DEVICE);
  assert.ok(c.ok, JSON.stringify(c));
});

it('another key, an unknown kid, and bytes that are no COSE_Sign1 all fail with the reason', () => {
  const other = new EarSigner(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
  const otherKey = { ...jwk(other), kid: key.kid };
  const c1 = checkEar(b64(cwt), otherKey, round, DEVICE);
  assert.ok(!c1.ok && /signature does not verify/.test(c1.reason));
  const c2 = checkEar(b64(cwt), { ...key, kid: 'AAAAAAAAAAA' }, round, DEVICE);
  assert.ok(!c2.ok && /not the gateway's EAR key AAAAAAAAAAA/.test(c2.reason));
  const c3 = checkEar(b64(new Uint8Array([1, 2, 3])), key, round, DEVICE);
  assert.ok(!c3.ok && /not a COSE_Sign1/.test(c3.reason));
});

it('a verified EAR that disagrees with the page says where', () => {
  const shown = { status: 'affirming', codes: [] } as unknown as RoundView;
  const c = checkEar(b64(cwt), key, shown, DEVICE);
  assert.ok(c.ok);
  if (c.ok)
    assert.equal(c.mismatches, [
      'the EAR says contraindicated, the page affirming',
      "the EAR's codes are [sw-not-allowed], the page's []",
    ]);
  const elsewhere = checkEar(b64(cwt), key, round, 'ffffffffffffffffffffffff');
  assert.ok(elsewhere.ok && elsewhere.mismatches[0]?.includes('no appraisal of device'));
});

it.run();
