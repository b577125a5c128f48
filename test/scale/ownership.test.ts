import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseBusMessage } from '../../gateway/scale/messages.ts';
import { connectDecision, mayLapse, resolveConflict } from '../../gateway/scale/ownership.ts';
import { anyMatches, topicMatches } from '../../gateway/scale/topic-filter.ts';
import { fullDevice } from '../gateway/fixtures/store-records.ts';

// The decisions of several gateways, without Redis or PostgreSQL: who may connect where, who
// turns a device stale, how a refused device write is merged, which forwarded topics match.

const base = { deviceId: 'ab'.repeat(12), me: 'gw2', busUp: true, checked: true, holdOffUntil: 0, now: 1000 };

test('a device claimed by another gateway is refused at CONNECT (identifier rejected), saying where', () => {
  const r = connectDecision({ ...base, holder: 'gw1' });
  assert.is(r?.returnCode, 2);
  assert.match(r?.reason ?? '', /attested on gateway gw1/);
  assert.is(connectDecision({ ...base, holder: null }), undefined, 'unclaimed: admitted');
  assert.is(connectDecision({ ...base, holder: 'gw2' }), undefined, 'ours: the local same-id rules apply');
});

test('without the bus, or before its claims were checked, or while gateways claim again: retry later', () => {
  for (const input of [
    { ...base, busUp: false, holder: null },
    { ...base, checked: false, holder: null },
    { ...base, holdOffUntil: 1500, holder: null },
  ]) {
    const r = connectDecision(input);
    assert.is(r?.returnCode, 3, JSON.stringify(input));
    assert.match(r?.reason ?? '', /retry/);
  }
  assert.is(connectDecision({ ...base, holdOffUntil: 1000, holder: null }), undefined, 'hold-off over');
});

test("a device's expiry is run by the gateway that wrote it last, or by anyone once that one is gone", () => {
  const live = new Set(['gw1', 'gw2']);
  assert.ok(mayLapse('gw2', 'gw2', live));
  assert.not.ok(mayLapse('gw1', 'gw2', live));
  assert.ok(mayLapse('gw3', 'gw2', live), 'gw3 is gone');
  assert.ok(mayLapse(undefined, 'gw2', live), 'never read: nobody else is known to run it');
});

test('a refused write: the owner keeps what it attested, the labels come from whoever changed them', () => {
  const stored = { ...fullDevice(), posture: 'contraindicated' as const, labels: { room: '1', site: 'b' } };
  const base = { room: '1' };
  const ours = { ...fullDevice(), posture: 'affirming' as const, labels: base };
  // The owner appraised; an operator elsewhere added a label meanwhile.
  assert.equal(resolveConflict(stored, ours, base, true), { ...ours, labels: stored.labels });
  // Not the owner, labels untouched: the stored row stands.
  assert.is(resolveConflict(stored, ours, base, false), undefined);
  // Not the owner, but this write changed the labels: the stored row with ours.
  const relabelled = { ...ours, labels: { room: '2' } };
  assert.equal(resolveConflict(stored, relabelled, base, false), { ...stored, labels: { room: '2' } });
  // Only events were refused (no device write): nothing to write.
  assert.is(resolveConflict(stored, undefined, undefined, true), undefined);
});

test('MQTT topic filters: + one level, # the rest and the parent, $ topics out of wildcards', () => {
  const cases: [string, string, boolean][] = [
    ['app/a/#', 'app/a/temp', true],
    ['app/a/#', 'app/a', true],
    ['app/a/#', 'app/b/temp', false],
    ['app/+/temp', 'app/a/temp', true],
    ['app/+/temp', 'app/a/b/temp', false],
    ['app/+', 'app/a/temp', false],
    ['#', 'app/x', true],
    ['#', '$SYS/x', false],
    ['+/x', '$SYS/x', false],
    ['app/a/temp', 'app/a/temp', true],
    ['app/a/temp', 'app/a/temp/x', false],
  ];
  for (const [f, t, want] of cases) assert.is(topicMatches(f, t), want, `${f} vs ${t}`);
  assert.ok(anyMatches(['app/b/#', 'app/a/+'], 'app/a/x'));
  assert.not.ok(anyMatches([], 'app/a/x'));
});

test('bus messages are checked before use; what is not one says why', () => {
  assert.equal(parseBusMessage('{"t":"devices","from":"gw1","ids":["a"]}'), {
    t: 'devices',
    from: 'gw1',
    ids: ['a'],
  });
  const report = { rollout: 'r-1', device: 'd', command: 'c', state: 'staged' };
  assert.equal(parseBusMessage(JSON.stringify({ t: 'rollout-report', from: 'gw2', report })), {
    t: 'rollout-report',
    from: 'gw2',
    report,
  });
  const ask = { kind: 'operate', rollout: 'r-1', name: 'recipe', args: 'a0' };
  assert.equal(parseBusMessage(JSON.stringify({ t: 'rollout-ask', from: 'gw2', id: '7', ask })), {
    t: 'rollout-ask',
    from: 'gw2',
    id: '7',
    ask,
  });
  for (const [raw, why] of [
    ['nope', /not JSON/],
    ['[1]', /not a JSON object/],
    ['{"t":"devices","ids":["a"]}', /"from"/],
    ['{"t":"devices","from":"gw1","ids":[1]}', /"ids"/],
    ['{"t":"retire","from":"gw1"}', /"device"/],
    ['{"t":"launch","from":"gw1"}', /unknown message type "launch"/],
    ['{"t":"rollout-ask","from":"gw1","id":"1","ask":{"kind":"act","rollout":"r-1"}}', /rollout request/],
    [
      '{"t":"rollout-ask","from":"gw1","id":"1","ask":{"kind":"operate","rollout":"r-1","name":"x"}}',
      /rollout request/,
    ],
    ['{"t":"rollout-answer","from":"gw1","id":"1","answer":{}}', /answer to a rollout request/],
    [
      '{"t":"rollout-report","from":"gw1","report":{"rollout":"r-1","device":"d"}}',
      /report of a rollout member/,
    ],
    ['{"t":"rollout-resend","from":"gw1"}', /"rollout"/],
    ['{"t":"rollout-left","from":"gw1","rollout":"r-1"}', /"device"/],
  ] as const) {
    const m = parseBusMessage(raw);
    assert.ok('invalid' in m, raw);
    assert.match((m as { invalid: string }).invalid, why);
  }
});

test.run();
