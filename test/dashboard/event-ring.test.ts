import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { EventRing } from '../../gateway/dashboard/event-ring.ts';

const it = suite('event ring (what a reconnecting stream replays)');

it('numbers events from 1 and replays those after a number', () => {
  const r = new EventRing<string>(4);
  assert.is(r.last, 0);
  assert.equal(r.after(0), []);
  for (const x of ['a', 'b', 'c']) r.push(x);
  assert.is(r.last, 3);
  assert.equal(r.after(1), [
    { seq: 2, item: 'b' },
    { seq: 3, item: 'c' },
  ]);
  assert.equal(r.after(3), [], 'nothing missed');
});

it('replays exactly up to capacity, and refuses once events were overwritten', () => {
  const r = new EventRing<number>(3);
  for (let i = 1; i <= 10; i++) r.push(i);
  assert.equal(
    r.after(7)?.map((e) => e.item),
    [8, 9, 10],
  );
  assert.is(r.after(6), undefined, 'event 7 is gone: the client must reload');
});

it('refuses numbers it never gave out', () => {
  const r = new EventRing<number>(3);
  r.push(1);
  assert.is(r.after(2), undefined, 'from the future (another process)');
  assert.is(r.after(-1), undefined);
  assert.is(r.after(0.5), undefined);
  assert.throws(() => new EventRing(0), /capacity/);
});

it.run();
