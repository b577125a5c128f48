import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { SimAttester } from '../equipment/sim/attester.ts';
import { RoundsHarness, TIMING } from './support/rounds-harness.ts';

// An on-demand batch with a fake clock: rounds on the connected devices, the unreachable ones in
// their own field, completion when the last round settles or at the deadline sweep.

const it = suite<{ h: RoundsHarness }>('batches (fake clock)');
it.before.each((ctx) => {
  ctx.h = new RoundsHarness();
});
it.after.each((ctx) => ctx.h.dispose());

async function attested(h: RoundsHarness, seed: string) {
  const a = new SimAttester({ seed });
  const l = h.connect(a);
  l.deliver(a.hello());
  await l.answer();
  return l;
}

it('answered, silent and unreachable devices: progress from the store, done at the deadline', async ({
  h,
}) => {
  const answering = await attested(h, 'b/1');
  const silent = await attested(h, 'b/2');
  const away = await attested(h, 'b/3');
  h.close(away.conn);
  const ids = [answering.conn.deviceId, silent.conn.deviceId, away.conn.deviceId];
  const batch = h.batches.start({ all: true }, ids);
  assert.equal(batch.unreachable, [away.conn.deviceId]);
  assert.is(batch.rounds.length, 2);
  answering.answer();
  let p = (await h.batches.progress(batch.id))!;
  assert.is(p.done, false);
  assert.is(p.answered, 1);
  assert.is(p.pending, 1);
  assert.is(p.unreachable, 1);
  assert.equal(p.results.find((r) => r.id === away.conn.deviceId)?.state, 'unreachable');
  h.clock.advance(TIMING.deadlineMs);
  p = (await h.batches.progress(batch.id))!;
  assert.is(p.done, true);
  assert.is(p.stale, 1);
  assert.is(p.appraised.affirming, 1);
  assert.is(h.batches.openCount, 0);
  assert.equal(p.selector, { all: true });
});

it('a device with a round in flight joins the batch with that round', async ({ h }) => {
  const l = await attested(h, 'b/4');
  const inFlight = h.attestation.start(l.conn, 'periodic')!;
  const batch = h.batches.start({ ids: [l.conn.deviceId] }, [l.conn.deviceId]);
  assert.equal(batch.rounds, [inFlight.id]);
  l.answer();
  const p = (await h.batches.progress(batch.id))!;
  assert.is(p.done, true);
  assert.is(p.results[0]?.round, inFlight.id);
});

it('a batch of nobody reachable is done at once', async ({ h }) => {
  const batch = h.batches.start({ label: 'site=nowhere' }, ['0123456789abcdef01234567']);
  const p = (await h.batches.progress(batch.id))!;
  assert.is(p.done, true);
  assert.is(p.devices, 1);
  assert.is(p.issued, 0);
});

it.run();
