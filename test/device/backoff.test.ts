import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Backoff } from '../../device/backoff.ts';

const test = suite('reconnect backoff');

test('full jitter: the window doubles up to the cap; reset starts over', () => {
  const top = new Backoff({ baseMs: 1000, capMs: 60_000 }, () => 0.999999);
  const windows = Array.from({ length: 9 }, () => top.next() + 1);
  assert.equal(windows, [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
  top.reset();
  assert.is(top.next() + 1, 1000);
  const bottom = new Backoff({ baseMs: 1000, capMs: 60_000 }, () => 0);
  assert.is(bottom.next(), 0, 'a delay may be anywhere down to zero');
});

test('stays finite however long the gateway is away; refuses nonsense policies', () => {
  const b = new Backoff({ baseMs: 1, capMs: 10 }, () => 0.5);
  for (let i = 0; i < 5000; i++) assert.ok(b.next() <= 10);
  assert.throws(() => new Backoff({ baseMs: 0, capMs: 10 }), /0 < baseMs <= capMs/);
  assert.throws(() => new Backoff({ baseMs: 100, capMs: 10 }), /got baseMs 100, capMs 10/);
});

test.run();
