import pino from 'pino';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { DeviceRecord } from '../../gateway/model.ts';
import { Fleet, type PostureNotice } from '../../gateway/posture/fleet.ts';
import {
  FAILURE_SOURCE,
  nextPosture,
  type PostureState,
  speaksForDevice,
  trustedUntil,
} from '../../gateway/posture/posture.ts';
import { SqliteStore } from '../../gateway/store/sqlite.ts';
import { RESULT_CODES } from '../../shared/protocol/index.ts';
import { FakeClock } from '../support/fake-clock.ts';
import { minimalDevice } from './fixtures/store-records.ts';

const it = suite('posture rules');

const affirming: PostureState = { posture: 'affirming', reasons: [], expires: 5000 };
const enrolling: PostureState = { posture: 'enrolling', reasons: [] };

it('every result code says who can cause it; failures from `anyone` come first in §5 order', () => {
  assert.equal(Object.keys(FAILURE_SOURCE).sort(), [...RESULT_CODES].sort());
  const sources = RESULT_CODES.filter((c) => c !== 'stale').map((c) => FAILURE_SOURCE[c]);
  const firstDevice = sources.indexOf('device');
  assert.ok(firstDevice > 0 && sources.slice(firstDevice).every((s) => s === 'device'));
  assert.is(FAILURE_SOURCE.stale, 'silence');
});

it('an appraisal sets the posture and its expiry', () => {
  assert.equal(nextPosture(enrolling, { kind: 'appraised', status: 'affirming', expires: 9 }), {
    posture: 'affirming',
    reasons: [],
    expires: 9,
  });
  assert.equal(
    nextPosture(affirming, { kind: 'appraised', status: 'warning', expires: 10 })?.posture,
    'warning',
  );
});

it('a failure anyone could cause moves an attested device only from its attested connection', () => {
  const refused = (standing: 'attested' | 'unattested' | 'unattested-while-trusted-elsewhere') =>
    nextPosture(affirming, { kind: 'refused', code: 'binding-mismatch', standing });
  assert.equal(refused('attested'), { posture: 'contraindicated', reasons: ['binding-mismatch'] });
  assert.is(refused('unattested'), undefined, 'a twin cannot spoil an affirming device');
  assert.is(refused('unattested-while-trusted-elsewhere'), undefined);
});

it("a failure signed by the device's AK and bound to the connection always speaks for it", () => {
  for (const standing of ['attested', 'unattested', 'unattested-while-trusted-elsewhere'] as const)
    assert.equal(nextPosture(affirming, { kind: 'refused', code: 'sw-not-allowed', standing }), {
      posture: 'contraindicated',
      reasons: ['sw-not-allowed'],
    });
});

it('an onboarding that fails shows, unless the device is trusted on another connection', () => {
  assert.ok(speaksForDevice('activation-failed', 'unattested', 'enrolling'));
  assert.ok(speaksForDevice('ak-unknown', 'unattested', 'unknown'));
  assert.not.ok(speaksForDevice('activation-failed', 'unattested-while-trusted-elsewhere', 'enrolling'));
  assert.not.ok(speaksForDevice('activation-failed', 'unattested', 'stale'));
});

it('silence makes stale only from the attested connection; a lapse only for the expiry it was armed for', () => {
  assert.equal(nextPosture(affirming, { kind: 'silent', standing: 'attested' }), {
    posture: 'stale',
    reasons: ['stale'],
  });
  assert.is(nextPosture(affirming, { kind: 'silent', standing: 'unattested' }), undefined);
  assert.is(nextPosture(affirming, { kind: 'lapsed', expires: 4000 }), undefined, 'renewed since');
  assert.equal(nextPosture(affirming, { kind: 'lapsed', expires: 5000 })?.posture, 'stale');
  assert.is(
    nextPosture({ posture: 'contraindicated', reasons: ['log-mismatch'] }, { kind: 'lapsed', expires: 5000 }),
    undefined,
  );
  assert.is(nextPosture(enrolling, { kind: 'unanswered-after-restart' }), undefined);
  assert.equal(nextPosture(affirming, { kind: 'unanswered-after-restart' })?.posture, 'stale');
});

it('a connection is trusted until expiry when its status is admitted', () => {
  assert.is(trustedUntil({ status: 'affirming', expires: 7 }, false), 7);
  assert.is(trustedUntil({ status: 'warning', expires: 7 }, false), 0);
  assert.is(trustedUntil({ status: 'warning', expires: 7 }, true), 7);
  assert.is(trustedUntil({ status: 'contraindicated', expires: 7 }, true), 0);
});

it('the fleet turns an unrenewed posture stale at expiry plus grace, records the event once', async () => {
  const clock = new FakeClock();
  const store = new SqliteStore(':memory:');
  const notices: PostureNotice[] = [];
  const fleet = new Fleet(
    store,
    { postureChanged: (n) => notices.push(n) },
    () => 500,
    clock,
    pino({ level: 'silent' }),
  );
  try {
    const d: DeviceRecord = minimalDevice();
    store.saveDevice(d);
    const expires = clock.now() + 10_000;
    fleet.apply(d, { kind: 'appraised', status: 'affirming', expires }, 'r1');
    assert.is(notices.at(-1)?.posture, 'affirming');
    clock.advance(10_499);
    assert.is(fleet.get(d.id)?.posture, 'affirming', 'within the grace');
    clock.advance(1);
    assert.is(fleet.get(d.id)?.posture, 'stale');
    assert.equal(
      notices.map((n) => n.posture),
      ['affirming', 'stale'],
    );
    assert.equal(
      (await store.postureEvents(d.id, 10)).map((e) => e.to),
      ['stale', 'affirming'],
    );
    // Renewed before expiry: the old timer no longer applies.
    fleet.apply(
      fleet.get(d.id)!,
      { kind: 'appraised', status: 'affirming', expires: clock.now() + 1000 },
      'r2',
    );
    clock.advance(900);
    fleet.apply(
      fleet.get(d.id)!,
      { kind: 'appraised', status: 'affirming', expires: clock.now() + 1000 },
      'r3',
    );
    clock.advance(1000);
    assert.is(fleet.get(d.id)?.posture, 'affirming', 'renewed');
    clock.advance(500);
    assert.is(fleet.get(d.id)?.posture, 'stale');
  } finally {
    fleet.close();
    store.closeNow();
  }
});

it.run();
