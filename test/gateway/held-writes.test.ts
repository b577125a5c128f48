import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HeldWrites } from '../../gateway/store/held-writes.ts';
import { SqliteStore } from '../../gateway/store/sqlite.ts';
import { appraisedRound, minimalDevice, pendingRound, roundId } from './fixtures/store-records.ts';

// A pending round's record waits (held-writes.ts) for the settled record that usually replaces it
// within a second or two, so a round is written once; one that does not settle is written when
// its hold ends, and every read, flush and close sees it.

const dirs: string[] = [];
const stores: SqliteStore[] = [];
test.after.each(() => {
  for (const s of stores.splice(0)) s.closeNow();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function openStore(pendingRoundHoldMs: number, file?: string): SqliteStore {
  if (!file) {
    const dir = mkdtempSync(join(tmpdir(), 'vigil-held-'));
    dirs.push(dir);
    file = join(dir, 'posture.db');
  }
  const store = new SqliteStore(file, { flushDelayMs: 5, pendingRoundHoldMs });
  stores.push(store);
  return store;
}

const until = async (cond: () => boolean, what: string) => {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), what);
};

test('a round settled within the hold is written once, as settled', async () => {
  const store = openStore(60_000);
  store.saveDevice(minimalDevice());
  store.saveRound(pendingRound(1));
  assert.equal(await store.round(roundId(1)), pendingRound(1), 'a keyed lookup sees the held record');
  store.saveRound(appraisedRound(1));
  await until(() => store.stats().queued === 0, 'the queue flushed by time');
  assert.equal(store.stats(), {
    commits: 1,
    writes: 2,
    coalesced: 1,
    failedWrites: 0,
    queued: 0,
    dropped: 0,
  });
  assert.equal(await store.round(roundId(1)), appraisedRound(1));
});

test('a round that does not settle is written when its hold ends', async () => {
  const store = openStore(50);
  store.saveDevice(minimalDevice());
  store.saveRound(pendingRound(1));
  await until(() => store.stats().writes === 1, 'the device written first');
  assert.is(store.stats().queued, 1, 'the round still held');
  await until(() => store.stats().writes === 2, 'the round written after its hold');
  assert.equal(
    (await store.pendingRounds()).map((r) => r.id),
    [roundId(1)],
  );
});

test('reads of rounds, flush and close see held rounds; a restart re-reads them as pending', async () => {
  const store = openStore(60_000);
  store.saveDevice(minimalDevice());
  store.saveRound(pendingRound(1));
  assert.equal(
    (await store.pendingRounds()).map((r) => r.id),
    [roundId(1)],
    'a query of rounds releases what is held',
  );
  store.saveRound(pendingRound(2));
  store.closeNow();
  const again = openStore(60_000, store.file);
  assert.equal(
    (await again.pendingRounds()).map((r) => r.id),
    [roundId(1), roundId(2)],
    'close wrote the held round',
  );
});

test('HeldWrites: due writes leave oldest first; take and peek see the newest', async () => {
  let now = 0;
  const released: string[] = [];
  const held = new HeldWrites<string>(
    100,
    (w) => released.push(w),
    () => now,
  );
  held.hold('a', 'a1');
  now = 10;
  held.hold('b', 'b1');
  held.hold('a', 'a2');
  assert.is(held.peek('a'), 'a2');
  assert.is(held.superseded, 1);
  assert.is(held.take('b'), 'b1');
  assert.is(held.size, 1);
  now = 200;
  held.releaseAll();
  assert.equal(released, ['a2']);
  held.dispose();
});

test.run();
