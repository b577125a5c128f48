import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Pending } from '../../gateway/connections/pending.ts';
import { FakeClock } from '../support/fake-clock.ts';

const it = suite('pending: issued with a deadline, settled once');

it('open → answered once; a second answer finds it settled; an unknown id is unknown', () => {
  const clock = new FakeClock();
  const expired: string[] = [];
  const p = new Pending<{ id: string; deadlineAt: number }>(clock, (i) => expired.push(i.id));
  p.open({ id: 'a', deadlineAt: clock.now() + 100 });
  assert.is(p.lookup('a').kind, 'open');
  assert.ok(p.settle('a', 'answered'));
  assert.is(p.settle('a', 'answered'), undefined, 'settles once');
  assert.equal(p.lookup('a'), { kind: 'settled', how: 'answered' });
  assert.equal(p.lookup('b'), { kind: 'unknown' });
  clock.advance(1000);
  assert.equal(expired, [], 'an answered item never expires');
});

it('the deadline settles it as expired and calls back once; drain stops every deadline', () => {
  const clock = new FakeClock();
  const expired: string[] = [];
  const p = new Pending<{ id: string; deadlineAt: number }>(clock, (i) => expired.push(i.id));
  p.open({ id: 'a', deadlineAt: clock.now() + 100 });
  p.open({ id: 'b', deadlineAt: clock.now() + 200 });
  clock.advance(100);
  assert.equal(expired, ['a']);
  assert.equal(p.lookup('a'), { kind: 'settled', how: 'expired' });
  assert.equal(
    p.drain().map((i) => i.id),
    ['b'],
  );
  clock.advance(1000);
  assert.equal(expired, ['a']);
  assert.is(clock.pending, 0);
});

it('remembers a bounded number of settled ids; an id is never issued twice', () => {
  const clock = new FakeClock();
  const p = new Pending<{ id: string; deadlineAt: number }>(clock, () => {}, 3);
  for (const id of ['1', '2', '3', '4']) {
    p.open({ id, deadlineAt: clock.now() + 10 });
    p.settle(id, 'answered');
  }
  assert.is(p.lookup('1').kind, 'unknown', 'the oldest is forgotten');
  assert.is(p.lookup('4').kind, 'settled');
  assert.throws(() => p.open({ id: '4', deadlineAt: 0 }), /issued already/);
});

it.run();
