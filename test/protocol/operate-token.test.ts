import { createHash, generateKeyPairSync } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { rawPublicKey, toBeSigned } from '../../shared/cose/sign1.ts';
import {
  decodeOperateToken,
  membersDigest,
  type OperateClaims,
  OperateTokenError,
  signOperateToken,
  verifyOperateToken,
} from '../../shared/protocol/operate-token.ts';

// The token of an `operate` command (PROTOCOL.md §6.2): what a third party checks with the
// gateway's EAR public key.

const it = suite('operate token');
const ear = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const members = ['b0b0b0b0b0b0b0b0b0b0b0b0', 'a1a1a1a1a1a1a1a1a1a1a1a1', 'c2c2c2c2c2c2c2c2c2c2c2c2'];
const claims: OperateClaims = {
  swarm: 'line-3',
  rollout: 'r-42',
  name: 'switch-recipe',
  digest: new Uint8Array(32).fill(0xd1),
  members: membersDigest(members),
  at: 1_900_000_000_000,
  exp: 1_900_000_060_000,
};

it('members: SHA-256 of the ids sorted and joined by newlines, whatever their order', () => {
  const text = 'a1a1a1a1a1a1a1a1a1a1a1a1\nb0b0b0b0b0b0b0b0b0b0b0b0\nc2c2c2c2c2c2c2c2c2c2c2c2';
  assert.equal(membersDigest(members), new Uint8Array(createHash('sha256').update(text).digest()));
  assert.equal(membersDigest([...members].reverse()), membersDigest(members));
});

it('signed ES256 and verified; noble (lowS off) verifies the same Sig_structure', () => {
  const token = signOperateToken(ear.privateKey, claims);
  assert.equal(verifyOperateToken(token, ear.publicKey, claims.at), claims);
  const { sign1 } = decodeOperateToken(token);
  const digest = createHash('sha256').update(toBeSigned(sign1.protectedBytes, sign1.payload)).digest();
  assert.ok(
    p256.verify(sign1.signature, digest, rawPublicKey(ear.publicKey), { prehash: false, lowS: false }),
  );
});

it('refused: another key, expiry reached, an EdDSA signer, a broken token', () => {
  const token = signOperateToken(ear.privateKey, claims);
  const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const refused = (run: () => unknown, fragment: string) =>
    assert.throws(run, (e: Error) => e instanceof OperateTokenError && e.message.includes(fragment));
  refused(() => verifyOperateToken(token, other.publicKey, claims.at), 'does not verify');
  refused(() => verifyOperateToken(token, ear.publicKey, claims.exp), 'expired');
  refused(() => signOperateToken(generateKeyPairSync('ed25519').privateKey, claims), 'ES256');
  refused(() => decodeOperateToken(new Uint8Array([1, 2, 3])), 'operate token');
});

it.run();
