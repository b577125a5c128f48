import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type Write, WriteQueue } from '../../gateway/store/write-queue.ts';

function write(table: string, what: string, log: string[]): Write {
  return { table, what, run: () => log.push(what) };
}

/** A queue over a fake engine that fails whole commits while `failing` is set. */
function fakeQueue(maxBatch: number) {
  const committed: string[] = [];
  const errors: unknown[] = [];
  const state = { failing: false, commits: 0 };
  const queue = new WriteQueue(
    (writes) => {
      if (state.failing) throw new Error('SQLITE_FULL');
      for (const w of writes) w.run();
      state.commits++;
    },
    { flushDelayMs: 60_000, maxBatch },
    (err) => errors.push(err),
  );
  return { queue, committed, errors, state };
}

test('keyed writes coalesce in place, keeping the first position', () => {
  const { queue, committed } = fakeQueue(100);
  queue.push(write('devices', 'device v1', committed), 'd');
  queue.push(write('rounds', 'round', committed), 'r');
  queue.push(write('devices', 'device v2', committed), 'd');
  queue.push(write('events', 'event', committed));
  assert.is(queue.length, 3);
  assert.is(queue.coalesced, 1);
  assert.is((queue.queued('d') as Write).what, 'device v2');
  assert.ok(queue.pendingFor('events'));
  assert.not.ok(queue.pendingFor('allowlist'));
  queue.flush();
  assert.equal(committed, ['device v2', 'round', 'event']);
  assert.not.ok(queue.pendingFor('devices'));
  queue.dispose();
});

test('a failed commit loses nothing: an explicit flush throws, a full queue reports, both retry', () => {
  const { queue, committed, errors, state } = fakeQueue(3);
  state.failing = true;
  queue.push(write('t', 'a', committed), 'a');
  queue.push(write('t', 'b', committed));
  assert.throws(() => queue.flush(), /SQLITE_FULL/);
  assert.is(queue.length, 2);
  queue.push(write('t', 'c', committed));
  assert.is(errors.length, 1, 'the full-queue flush had no caller to throw to');
  queue.push(write('t', 'd', committed));
  assert.is(errors.length, 1, 'no retry on every write while failing');
  queue.push(write('t', 'a2', committed), 'a');
  state.failing = false;
  queue.flush();
  assert.equal(committed, ['a2', 'b', 'c', 'd']);
  assert.is(queue.length, 0);
  queue.dispose();
});

test.run();
