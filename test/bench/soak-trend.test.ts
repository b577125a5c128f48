import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type Sample, segmentTrends } from '../../bench/soak-trend.ts';

// The soak's leak verdict comes from these slopes; a wrong fit would call a sawtooth a leak or
// hide one.

/** Ten minutes sampled every 5 s; the live heap taken every 60 s. */
function run(rss: (t: number) => number, heap: (t: number) => number, segment = 0, from = 0): Sample[] {
  return Array.from({ length: 121 }, (_, i) => {
    const t = from + i * 5;
    return {
      t,
      rssMb: rss(t),
      fds: 3041,
      attested: 3000,
      segment,
      ...(i % 12 === 0 && { liveHeapMb: heap(t) }),
    };
  });
}

const sawtooth = (t: number) => 600 + (t % 120) * 0.8; // collections every two minutes

test('a sawtooth RSS over a flat live heap: RSS slope near zero, live heap slope zero', () => {
  const [trend] = segmentTrends(run(sawtooth, () => 180));
  assert.ok(trend, 'one segment');
  assert.ok(Math.abs(trend.rss.slope) < 2, `RSS slope ${trend.rss.slope}`);
  assert.is(trend.liveHeap?.slope, 0);
  assert.is(trend.fds.slope, 0);
});

test('a live heap that grows 2 MB a minute is measured as such, whatever RSS does', () => {
  const [trend] = segmentTrends(run(sawtooth, (t) => 180 + (2 * t) / 60));
  assert.ok(trend?.liveHeap);
  assert.ok(Math.abs(trend.liveHeap.slope - 2) < 1e-9, `live heap slope ${trend.liveHeap.slope}`);
});

test('each gateway process is fitted on its own, after its warm-up', () => {
  const before = run(
    () => 500,
    (t) => 100 + t / 60,
  );
  const after = run(
    () => 520,
    () => 150,
    1,
    700,
  );
  const trends = segmentTrends([...before, ...after]);
  assert.equal(
    trends.map((t) => t.segment),
    [0, 1],
  );
  assert.ok(trends[0]!.from >= 150 && trends[1]!.from >= 850, 'the first quarter of each is left out');
  assert.ok(Math.abs(trends[0]!.liveHeap!.slope - 1) < 1e-9);
  assert.is(trends[1]!.liveHeap!.slope, 0);
});

test('too few live-heap samples after the warm-up: no live-heap trend', () => {
  // Only the first and the last sample keep their live heap; the first falls in the warm-up.
  const samples = run(sawtooth, () => 180).map((s, i) => {
    if (i === 0 || i === 120) return s;
    const { liveHeapMb: _dropped, ...rest } = s;
    return rest;
  });
  const [trend] = segmentTrends(samples);
  assert.ok(trend);
  assert.is(trend.liveHeap, undefined);
});

test.run();
