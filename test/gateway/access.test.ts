import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mayDeliver, mayPublish, maySubscribe, type Peer } from '../../gateway/broker/access.ts';

const ID = 'aaaaaaaaaaaaaaaaaaaaaaaa';
const OTHER = 'bbbbbbbbbbbbbbbbbbbbbbbb';
const NOW = 1_000_000;
const fresh: Peer = { kind: 'device', deviceId: ID, trustedUntil: NOW + 1 };
const unattested: Peer = { kind: 'device', deviceId: ID, trustedUntil: 0 };
const lapsed: Peer = { kind: 'device', deviceId: ID, trustedUntil: NOW };
const operator: Peer = { kind: 'operator' };

test('a device publishes on its own out only, never retained', () => {
  assert.ok(mayPublish(unattested, `vigil/v1/${ID}/out`, false, NOW).ok);
  assert.not.ok(mayPublish(unattested, `vigil/v1/${ID}/out`, true, NOW).ok);
  for (const t of [
    `vigil/v1/${OTHER}/out`,
    `vigil/v1/${ID}/in`,
    `vigil/v1/fleet/${ID}`,
    'vigil/v1',
    'vigil/v1/x',
  ]) {
    assert.not.ok(mayPublish(fresh, t, false, NOW).ok, t);
  }
});

test('app traffic flows only while this connection is fresh and good', () => {
  for (const peer of [unattested, lapsed]) {
    assert.not.ok(mayPublish(peer, `app/${ID}/temp`, false, NOW).ok);
    assert.not.ok(maySubscribe(peer, `app/${ID}/cmd`, NOW).ok);
    assert.not.ok(mayDeliver(peer, `app/${ID}/cmd`, false, NOW));
  }
  assert.ok(mayPublish(fresh, `app/${ID}/temp`, false, NOW).ok);
  assert.ok(maySubscribe(fresh, `app/${ID}/#`, NOW).ok);
  assert.ok(mayDeliver(fresh, `app/${ID}/cmd`, false, NOW));
  assert.not.ok(mayPublish(fresh, `app/${OTHER}/temp`, false, NOW).ok);
  assert.not.ok(maySubscribe(fresh, `app/${OTHER}/#`, NOW).ok);
  assert.not.ok(maySubscribe(fresh, 'app/+/cmd', NOW).ok);
});

test('in reaches only its own device, and only when addressed to this connection', () => {
  assert.ok(maySubscribe(unattested, `vigil/v1/${ID}/in`, NOW).ok);
  assert.ok(mayDeliver(unattested, `vigil/v1/${ID}/in`, true, NOW));
  assert.not.ok(mayDeliver(unattested, `vigil/v1/${ID}/in`, false, NOW));
  assert.not.ok(mayDeliver(fresh, `vigil/v1/${OTHER}/in`, true, NOW));
});

test('wildcards and foreign trees are refused to devices', () => {
  for (const f of [
    '#',
    '+/+/in',
    'vigil/v1/+/in',
    'vigil/#',
    '$SYS/#',
    `vigil/v1/${OTHER}/in`,
    `vigil/v1/${ID}/out`,
    `vigil/v1/fleet/${ID}`,
  ]) {
    assert.not.ok(maySubscribe(fresh, f, NOW).ok, f);
  }
});

test('operators: app and fleet only; never a device in or out', () => {
  assert.ok(maySubscribe(operator, 'app/#', NOW).ok);
  assert.ok(maySubscribe(operator, 'vigil/v1/fleet/+', NOW).ok);
  for (const f of ['#', 'vigil/#', 'vigil/v1/+/in', '+/v1/fleet/x', `vigil/v1/${ID}/out`, '$SYS/#', 'app']) {
    assert.not.ok(maySubscribe(operator, f, NOW).ok, f);
  }
  assert.ok(mayPublish(operator, `app/${ID}/cmd`, false, NOW).ok);
  assert.not.ok(mayPublish(operator, `vigil/v1/${ID}/in`, false, NOW).ok);
  assert.not.ok(mayPublish(operator, `vigil/v1/fleet/${ID}`, false, NOW).ok);
  assert.ok(mayDeliver(operator, `vigil/v1/fleet/${ID}`, false, NOW));
  assert.not.ok(mayDeliver(operator, `vigil/v1/${ID}/in`, true, NOW));
  assert.not.ok(mayDeliver(operator, `vigil/v1/${ID}/out`, false, NOW));
});

test('a refusal says why', () => {
  const d = mayPublish(unattested, `app/${ID}/x`, false, NOW);
  assert.ok(!d.ok && d.why.includes('attest first'));
});

test.run();
