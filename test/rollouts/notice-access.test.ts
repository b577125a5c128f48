import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mayDeliver, mayPublish, maySubscribe, type Peer } from '../../gateway/broker/access.ts';
import { parseVigilTopic, topics } from '../../shared/protocol/topics.ts';

// The retained rollout notices (vigil/v1/fleet/rollouts/{id}): operators and back ends read them,
// devices never, and nobody but the gateway publishes there.

const ID = 'aaaaaaaaaaaaaaaaaaaaaaaa';
const NOW = 1_000_000;
const device: Peer = { kind: 'device', deviceId: ID, trustedUntil: NOW + 1 };
const operator: Peer = { kind: 'operator' };
const topic = topics.rollout('r-0123456789ab');

test('rollout topics parse; anything else under fleet/rollouts does not', () => {
  assert.equal(parseVigilTopic(topic), { kind: 'rollout', id: 'r-0123456789ab' });
  for (const t of [
    'vigil/v1/fleet/rollouts/x',
    'vigil/v1/fleet/rollouts/r-0123456789ab/more',
    'vigil/v1/fleet/other/r-0123456789ab',
  ])
    assert.is(parseVigilTopic(t), undefined, t);
});

test('operators read rollout notices; a fresh device cannot; nobody publishes them', () => {
  assert.ok(maySubscribe(operator, 'vigil/v1/fleet/rollouts/+', NOW).ok);
  assert.ok(mayDeliver(operator, topic, false, NOW));
  assert.not.ok(maySubscribe(device, 'vigil/v1/fleet/rollouts/+', NOW).ok);
  assert.not.ok(maySubscribe(device, topic, NOW).ok);
  assert.not.ok(mayDeliver(device, topic, false, NOW));
  assert.not.ok(mayDeliver(device, topic, true, NOW));
  assert.not.ok(mayPublish(operator, topic, true, NOW).ok);
  assert.not.ok(mayPublish(device, topic, false, NOW).ok);
});

test.run();
