import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ArtifactFiles } from '../../gateway/releases/artifact-files.ts';
import { ArtifactChunks } from '../../gateway/rollouts/chunks.ts';
import { TokenBucket } from '../../gateway/rollouts/token-bucket.ts';
import { FakeClock } from '../support/fake-clock.ts';
import { removeDir, tempDir } from '../support/tmp.ts';

// The artifact byte budget: a token bucket on an injected clock (a second's worth at most, never
// less than one chunk), and the chunk server reading wants from DIR/artifacts within it.

const it = suite('artifact bytes within the budget');
const CHUNK = 65_536;
const tick = () => new Promise((r) => setImmediate(r));

it('takes wait for their bytes in order; the rate bounds what passes; refunds come back', async () => {
  const clock = new FakeClock();
  let rate = 100_000;
  const bucket = new TokenBucket(() => rate, clock, CHUNK);
  const served: number[] = [];
  for (let i = 0; i < 4; i++) void bucket.take(CHUNK).then(() => served.push(i));
  await tick();
  assert.equal(served, [0], 'a full bucket holds one second: 100,000 bytes, one chunk of 65,536');
  assert.is(bucket.waiting, 3);
  clock.advance(300); // 34,464 + 30,000 < 65,536
  await tick();
  assert.equal(served, [0]);
  clock.advance(400); // + 40,000: enough for one more
  await tick();
  assert.equal(served, [0, 1]);
  rate = 1_000_000; // a reload applies from the next refill
  clock.advance(1000);
  await tick();
  assert.equal(served, [0, 1, 2, 3]);
  bucket.refund(CHUNK);
  let extra = false;
  void bucket.take(CHUNK).then(() => {
    extra = true;
  });
  await tick();
  assert.ok(extra, 'refunded bytes serve the next take at once');
  assert.throws(() => bucket.take(CHUNK + 1), /over 65536/);
  bucket.close();
});

it('a want is read from the artifact; one past its end is refused; a newer want supersedes a waiting one', async () => {
  const dir = tempDir('vigil-chunks-');
  try {
    const bytes = new Uint8Array(200_000).map((_, i) => i % 251);
    writeFileSync(join(dir, 'a.tar'), bytes);
    const artifact = { path: 'a.tar', size: bytes.length, sha256: '' };
    const clock = new FakeClock();
    const chunks = new ArtifactChunks(new ArtifactFiles(dir), new TokenBucket(() => 70_000, clock, CHUNK));
    const sent: [number, Uint8Array][] = [];
    const send = (offset: number, data: Uint8Array) => sent.push([offset, data]);
    assert.equal(await chunks.serve('d1', artifact, { offset: 0, length: CHUNK }, send), { outcome: 'sent' });
    assert.equal(sent[0], [0, bytes.slice(0, CHUNK)]);
    const past = await chunks.serve('d1', artifact, { offset: 200_000, length: 10 }, send);
    assert.equal(past.outcome, 'refused');
    assert.match(past.detail!, /past the artifact's 200000 bytes/);
    // The bucket is nearly empty: d1's next want waits, then a newer one from d1 supersedes it.
    const waiting = chunks.serve('d1', artifact, { offset: CHUNK, length: CHUNK }, send);
    const newer = chunks.serve('d1', artifact, { offset: 196_608, length: CHUNK }, send);
    clock.advance(3000);
    assert.equal(await waiting, { outcome: 'superseded' });
    assert.equal(await newer, { outcome: 'sent' });
    assert.equal(sent[1], [196_608, bytes.slice(196_608)], 'the tail, cut at the artifact size');
    assert.is(sent.length, 2);
  } finally {
    removeDir(dir);
  }
});

it.run();
