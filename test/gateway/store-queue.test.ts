import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type QueueEvent, type Write, WriteQueue } from '../../gateway/store/write-queue.ts';

function write(table: string, what: string, log: string[], shed?: 1 | 2): Write {
  return { table, what, run: () => log.push(what), ...(shed && { shed }) };
}

/** A queue over a fake engine that fails whole commits while `failing` is set. */
function fakeQueue(maxBatch: number, maxQueued = 1000) {
  const committed: string[] = [];
  const events: QueueEvent[] = [];
  const state = { failing: false, commits: 0, now: 1000 };
  const queue = new WriteQueue(
    (writes) => {
      if (state.failing) throw new Error('SQLITE_FULL');
      for (const w of writes) w.run();
      state.commits++;
    },
    { flushDelayMs: 60_000, maxBatch, maxQueued, maxRetryMs: 600_000, now: () => state.now },
    (e) => events.push(e),
  );
  return { queue, committed, events, state };
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

test('a failed commit loses nothing: reported once, no retry per write, all committed on recovery', () => {
  const { queue, committed, events, state } = fakeQueue(3);
  state.failing = true;
  queue.push(write('t', 'a', committed), 'a');
  queue.push(write('t', 'b', committed));
  assert.throws(() => queue.flush(), /SQLITE_FULL/);
  assert.is(queue.length, 2);
  assert.ok(queue.failing);
  assert.equal(queue.lastError, { message: 'SQLITE_FULL', at: 1000 });
  queue.push(write('t', 'c', committed));
  queue.push(write('t', 'd', committed));
  assert.is(state.commits, 0, 'a full queue does not retry on every write while failing');
  assert.throws(() => queue.flush(), /SQLITE_FULL/);
  assert.equal(
    events.map((e) => e.kind),
    ['failing'],
    'the failure is reported when it begins, not at every attempt',
  );
  queue.push(write('t', 'a2', committed), 'a');
  state.failing = false;
  state.now = 4000;
  queue.flush();
  assert.equal(committed, ['a2', 'b', 'c', 'd']);
  assert.is(queue.length, 0);
  assert.not.ok(queue.failing);
  assert.equal(events.at(-1), { kind: 'recovered', committed: 4, failedForMs: 3000 });
  assert.equal(queue.lastError, { message: 'SQLITE_FULL', at: 1000 }, 'kept for operators');
  queue.dispose();
});

test('over its bound while failing, the queue drops routine rounds first, then other history, never state', () => {
  const { queue, committed, events, state } = fakeQueue(1000, 4);
  state.failing = true;
  queue.push(write('devices', 'device', committed), 'd');
  queue.push(write('rounds', 'routine 1', committed, 1), 'r1');
  queue.push(write('posture_events', 'event 1', committed, 2));
  queue.push(write('rounds', 'routine 2', committed, 1), 'r2');
  assert.throws(() => queue.flush());
  queue.push(write('allowlist', 'admit', committed), 'x');
  assert.is(queue.length, 4);
  assert.is(queue.dropped, 1);
  assert.is(queue.queued('r1'), undefined, 'the oldest routine round went first');
  assert.equal(
    events.map((e) => e.kind),
    ['failing', 'shedding'],
  );
  // A routine round saved again (settled) after its pending state was dropped comes back at the end.
  queue.push(write('rounds', 'routine 1 settled', committed, 1), 'r1');
  assert.is(queue.dropped, 2, 'routine 2 was older');
  queue.push(write('rounds', 'enrolment', committed, 2), 'e');
  assert.is(queue.dropped, 3, 'the last routine round');
  queue.push(write('batches', 'batch', committed), 'b');
  assert.is(queue.dropped, 4, 'then the tier-2 history, oldest first: event 1');
  queue.push(write('devices', 'device v2', committed), 'd');
  state.failing = false;
  queue.flush();
  assert.equal(committed, ['device v2', 'admit', 'enrolment', 'batch']);
  queue.dispose();
});

test('with only durable state queued, nothing is dropped: the bound yields', () => {
  const { queue, committed, state } = fakeQueue(1000, 2);
  state.failing = true;
  for (const k of ['a', 'b', 'c']) queue.push(write('devices', k, committed), k);
  assert.throws(() => queue.flush());
  assert.is(queue.length, 3);
  assert.is(queue.dropped, 0);
  state.failing = false;
  queue.flush();
  assert.equal(committed, ['a', 'b', 'c']);
  queue.dispose();
});

test.run();
