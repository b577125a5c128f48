import { generateKeyPairSync, verify } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CryptoPool } from '../../gateway/verifier/pool.ts';
import { parseSignature, signatureCheck } from '../../shared/tpm/index.ts';
import { SimAttester } from '../equipment/sim/attester.ts';

// The verifier's crypto pool: the same answers from a worker as on the main thread, in order,
// batched; synchronous without threads; nothing queued is dropped at close.

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const sim = new SimAttester();

/** A quote's signature check from the sim AK; `tampered` flips a bit of what was signed. */
function check(tampered: boolean) {
  const challenge = {
    t: 'challenge' as const,
    round: new Uint8Array(16),
    nonce: new Uint8Array(32).fill(tampered ? 1 : 2),
    reason: 'periodic' as const,
    pcrs: [0, 14],
    logs: { sw: 0 },
    deadline: 1000,
  };
  const e = sim.evidence(challenge, new Uint8Array(32));
  const attest = Uint8Array.from(e.attest);
  if (tampered) attest[20]! ^= 1;
  return signatureCheck(sim.keys.akPublic, attest, parseSignature(e.sig))!;
}

const signs = (data: Uint8Array, signature: Uint8Array) =>
  verify('sha256', data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature);

test('without threads, every job is answered before the call returns', async () => {
  const pool = new CryptoPool(privateKey, 0);
  const got: unknown[] = [];
  pool.verify(check(false), (v) => got.push(v));
  pool.verify(check(true), (v) => got.push(v));
  pool.sign(Uint8Array.of(1, 2, 3), (s) => got.push(signs(Uint8Array.of(1, 2, 3), s)));
  assert.equal(got, [true, false, true]);
  await pool.close();
});

test('a worker gives the same answers, in order, for a batch of mixed jobs', async () => {
  const pool = new CryptoPool(privateKey, 1);
  const jobs = Array.from({ length: 40 }, (_, i) => i);
  const answers = await Promise.all(
    jobs.map(
      (i) =>
        new Promise<boolean>((resolve) => {
          if (i % 3 === 0) {
            const data = Uint8Array.of(i);
            pool.sign(data, (s) => resolve(signs(data, s)));
          } else pool.verify(check(i % 3 === 2), resolve);
        }),
    ),
  );
  assert.equal(
    answers,
    jobs.map((i) => i % 3 !== 2),
  );
  assert.is(pool.answering, 1, 'the answers came from the worker, not a fallback on this thread');
  await pool.close();
});

test('close answers what is still queued', async () => {
  const pool = new CryptoPool(privateKey, 1);
  const got: boolean[] = [];
  for (let i = 0; i < 5; i++) pool.verify(check(false), (v) => got.push(v));
  await pool.close();
  assert.equal(got, [true, true, true, true, true]);
});

test.run();
