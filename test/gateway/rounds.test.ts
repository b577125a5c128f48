import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { SimAttester } from '../equipment/sim/attester.ts';
import { last, RoundsHarness, TIMING } from './support/rounds-harness.ts';

// A round's life on one connection, with a fake clock: issued, answered, expired, replayed; the
// phases of a connection; which connection a round goes to. No sockets, no sleeps.

const it = suite<{ h: RoundsHarness }>('rounds (fake clock)');
it.before.each((ctx) => {
  ctx.h = new RoundsHarness();
});
it.after.each((ctx) => ctx.h.dispose());

it('hello → onboarding round with activate → answered → affirming, attested, trusted until expiry', async ({
  h,
}) => {
  const a = new SimAttester({ seed: 'r/1' });
  const l = h.connect(a);
  assert.is(l.conn.phase, 'awaiting-hello');
  l.deliver(a.hello());
  assert.is(l.conn.phase, 'attesting');
  const c = l.lastChallenge();
  assert.is(c.reason, 'onboard');
  assert.ok(c.activate, 'no AK enrolled yet: the round activates it');
  assert.is(h.fleet.get(l.conn.deviceId)?.posture, 'enrolling');
  h.clock.advance(100);
  await l.answer();
  const r = last(l, 'result');
  assert.is(r.status, 'affirming');
  assert.is(l.conn.phase, 'attested');
  assert.is(l.conn.trustedUntil, h.clock.now() + TIMING.expiryMs);
  const d = h.fleet.get(l.conn.deviceId)!;
  assert.is(d.posture, 'affirming');
  assert.ok(d.ak, 'AK enrolled');
});

it('the periodic round comes on the same connection, without activate; a replayed answer is round-replayed', async ({
  h,
}) => {
  const a = new SimAttester({ seed: 'r/2' });
  const l = h.connect(a);
  l.deliver(a.hello());
  await l.answer();
  const onboard = l.lastChallenge();
  // The first periodic delay is spread over the second half of an interval.
  h.clock.advanceUntil(() => l.lastChallenge() !== onboard, TIMING.periodicMs);
  const periodic = l.lastChallenge();
  assert.is(periodic.reason, 'periodic');
  assert.not.ok(periodic.activate);
  l.answer(periodic);
  assert.is(last(l, 'result').status, 'affirming');
  l.answer(periodic);
  assert.is(last(l, 'error').code, 'round-replayed');
  l.answer(onboard);
  assert.is(last(l, 'error').code, 'round-replayed', 'an older settled round too');
});

it('silence: at the deadline the round is stale, the attested device stale, the connection untrusted', async ({
  h,
}) => {
  const a = new SimAttester({ seed: 'r/3' });
  const l = h.connect(a);
  l.deliver(a.hello());
  await l.answer();
  const round = h.attestation.start(l.conn, 'on-demand')!;
  h.clock.advance(TIMING.deadlineMs - 1);
  assert.is(h.fleet.get(l.conn.deviceId)?.posture, 'affirming');
  h.clock.advance(1);
  assert.is(last(l, 'error').code, 'stale');
  assert.is(h.fleet.get(l.conn.deviceId)?.posture, 'stale');
  assert.is(l.conn.trustedUntil, 0);
  l.answer(
    l.sent.find((m) => m.t === 'challenge' && Buffer.from(m.round).toString('hex') === round.id) as never,
  );
  assert.is(last(l, 'error').code, 'round-expired', 'the late answer is told it was late');
});

it('evidence after its deadline but before the timer ran is expired too', ({ h }) => {
  const a = new SimAttester({ seed: 'r/4' });
  const l = h.connect(a);
  l.deliver(a.hello());
  const c = l.lastChallenge();
  // Move the clock without running timers: the deadline passed, its timer has not fired yet.
  const now = h.clock.now();
  (h.clock as unknown as { now(): number }).now = () => now + TIMING.deadlineMs + 1;
  l.answer(c);
  assert.is(last(l, 'error').code, 'round-expired');
  assert.is(h.settled.at(-1)?.state, 'stale');
});

it('messages out of order get unexpected-message; a round never issued here is round-unknown', ({ h }) => {
  const a = new SimAttester({ seed: 'r/5' });
  const l = h.connect(a);
  const other = h.connect(a);
  other.deliver(a.hello());
  const c = other.lastChallenge();
  l.deliver(a.evidence(c, new Uint8Array(32)));
  assert.is(last(l, 'error').code, 'unexpected-message', 'evidence before hello');
  assert.match(last(l, 'error').detail, /send hello first/);
  l.deliver(a.hello());
  l.deliver(a.hello());
  assert.is(last(l, 'error').code, 'unexpected-message', 'a second hello');
  l.deliver(a.evidence(c, new Uint8Array(32)));
  assert.is(last(l, 'error').code, 'round-unknown', "another connection's round");
});

it('a round goes to the attested connection, not to a newer one past hello (a twin)', async ({ h }) => {
  const a = new SimAttester({ seed: 'r/6' });
  const honest = h.connect(a);
  honest.deliver(a.hello());
  await honest.answer();
  const twin = h.connect(a);
  twin.deliver(a.hello());
  assert.is(h.connections.askable(a.hello().ek && honest.conn.deviceId), honest.conn);
  const before = honest.sent.length;
  const batch = h.batches.start({ ids: [honest.conn.deviceId] }, [honest.conn.deviceId]);
  assert.is(honest.sent.length, before + 1, 'the challenge went to the attested connection');
  assert.equal(batch.unreachable, []);
  // Once the attested connection is gone, the twin is all there is.
  h.close(honest.conn);
  assert.is(h.connections.askable(honest.conn.deviceId), twin.conn);
});

it('a failure on an unattested connection does not spoil a device trusted elsewhere', async ({ h }) => {
  const a = new SimAttester({ seed: 'r/7' });
  const honest = h.connect(a);
  honest.deliver(a.hello());
  await honest.answer();
  const twin = h.connect(a);
  twin.deliver(a.hello());
  const c = twin.lastChallenge();
  twin.deliver(a.evidence(c, new Uint8Array(32))); // bound to the wrong connection
  assert.is(last(twin, 'result').reasons[0], 'binding-mismatch');
  assert.is(h.fleet.get(honest.conn.deviceId)?.posture, 'affirming');
  assert.ok(honest.conn.trustedUntil > h.clock.now());
});

it('once a newer connection attests, older ones are closed; their rounds are abandoned', async ({ h }) => {
  const a = new SimAttester({ seed: 'r/8' });
  const first = h.connect(a);
  first.deliver(a.hello());
  await first.answer();
  h.attestation.start(first.conn, 'on-demand');
  h.clock.advance(10);
  const second = h.connect(a);
  second.deliver(a.hello());
  await second.answer();
  assert.ok(first.conn.closed, 'the older connection is retired');
  assert.ok(
    h.settled.some((r) => r.state === 'abandoned' && r.reason === 'on-demand'),
    'its round in flight is abandoned',
  );
  assert.equal([...h.connections.all()], [second.conn]);
});

it.run();
