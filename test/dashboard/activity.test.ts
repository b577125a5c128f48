import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Activity, roundFailed } from '../../gateway/dashboard/activity.ts';
import { EventBus } from '../../gateway/events.ts';

const it = suite('activity (rounds per minute)');

it('counts settled rounds and failures per bucket, zero-filled, oldest first', () => {
  const a = new Activity(1000, 4);
  a.record(10_100, false);
  a.record(10_900, true);
  a.record(12_000, false);
  const v = a.view(12_500);
  assert.is(v.bucketMs, 1000);
  assert.equal(v.buckets, [
    { at: 9000, rounds: 0, failures: 0 },
    { at: 10_000, rounds: 2, failures: 1 },
    { at: 11_000, rounds: 0, failures: 0 },
    { at: 12_000, rounds: 1, failures: 0 },
  ]);
});

it('forgets buckets older than it keeps', () => {
  const a = new Activity(1000, 2);
  a.record(1000, true);
  a.record(5000, false);
  assert.equal(
    a.view(5000).buckets.map((b) => b.rounds),
    [0, 1],
  );
});

it('a failure is a settled round that did not end affirming or warning', () => {
  assert.is(roundFailed({ state: 'appraised', status: 'affirming' }), false);
  assert.is(roundFailed({ state: 'appraised', status: 'warning' }), false);
  assert.is(roundFailed({ state: 'appraised', status: 'contraindicated' }), true);
  assert.is(roundFailed({ state: 'appraised', status: 'none' }), true);
  assert.is(roundFailed({ state: 'stale', status: null }), true);
  assert.is(roundFailed({ state: 'abandoned', status: null }), true);
});

it('follows a feed: settled rounds count, issued ones do not', () => {
  const bus = new EventBus();
  const a = new Activity(60_000, 1);
  a.follow(bus, () => 120_500);
  const round = {
    id: '00',
    reason: 'on-demand',
    batch: null,
    codes: [],
    detail: null,
    activate: false,
    issuedAt: 120_000,
    deadlineAt: 121_000,
  };
  bus.publish({
    kind: 'round',
    device: 'd',
    round: { ...round, state: 'pending', status: null, appraisedAt: null },
  });
  bus.publish({
    kind: 'round',
    device: 'd',
    round: { ...round, state: 'appraised', status: 'affirming', appraisedAt: 120_100 },
  });
  bus.publish({
    kind: 'round',
    device: 'd',
    round: { ...round, state: 'stale', status: null, appraisedAt: null },
  });
  assert.equal(a.view(120_500).buckets, [{ at: 120_000, rounds: 2, failures: 1 }]);
});

it.run();
