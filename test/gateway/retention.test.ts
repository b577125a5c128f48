import pino from 'pino';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startRetention } from '../../gateway/store/retention.ts';
import { openTestStore } from '../support/gateway.ts';
import { appraisedRound, DEVICE_ID, fullDevice, pendingRound, roundId } from './fixtures/store-records.ts';

const DAY = 24 * 60 * 60 * 1000;

test('the retention job deletes settled rounds past the policy days, in steps, and keeps the rest', async () => {
  const { store, close } = await openTestStore();
  const retention = startRetention(store, () => 7, pino({ level: 'silent' }), 60_000);
  try {
    store.saveDevice(fullDevice());
    const now = Date.now();
    // 4,500 rounds eight days old (more than one step), one six days old, one old but pending.
    for (let n = 1; n <= 4500; n++) store.saveRound({ ...appraisedRound(n), issuedAt: now - 8 * DAY });
    store.saveRound({ ...appraisedRound(5000), issuedAt: now - 6 * DAY });
    store.saveRound({ ...pendingRound(5001), issuedAt: now - 30 * DAY });
    assert.is(await retention.run(), 4500);
    assert.equal(
      (await store.recentRounds(DEVICE_ID, 10)).map((r) => r.id).sort(),
      [roundId(5000), roundId(5001)].sort(),
    );
    assert.is(await retention.run(), 0);
  } finally {
    retention.close();
    await close();
  }
});

test.run();
