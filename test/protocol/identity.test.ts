import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  appTopicOwner,
  deviceIdentity,
  isDeviceId,
  parseVigilTopic,
  topics,
} from '../../shared/protocol/index.ts';

test('device id is the first 24 hex digits of SHA-256 over the EK public area', () => {
  // SHA-256("abc") is a published vector (FIPS 180-2 appendix B.1).
  const id = deviceIdentity(new TextEncoder().encode('abc'));
  assert.is(id.ekHash, 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  assert.is(id.deviceId, 'ba7816bf8f01cfea414140de');
  assert.ok(isDeviceId(id.deviceId));
  assert.not.ok(isDeviceId(id.ekHash));
  assert.not.ok(isDeviceId('BA7816BF8F01CFEA414140DE'));
});

test('topics are built and parsed in one place; wildcards and foreign shapes are not ours', () => {
  const id = 'ba7816bf8f01cfea414140de';
  assert.equal(parseVigilTopic(topics.out(id)), { kind: 'out', id });
  assert.equal(parseVigilTopic(topics.in(id)), { kind: 'in', id });
  assert.equal(parseVigilTopic(topics.fleet(id)), { kind: 'fleet', id });
  for (const t of [
    'vigil/v1/+/in',
    'vigil/v1/#',
    `vigil/v1/${id}/in/x`,
    `vigil/v2/${id}/in`,
    'vigil/v1/fleet/+',
  ]) {
    assert.is(parseVigilTopic(t), undefined, t);
  }
  assert.is(appTopicOwner(`app/${id}/temp`), id);
  assert.is(appTopicOwner('app/+/temp'), undefined);
  assert.is(appTopicOwner('app'), undefined);
});

test.run();
