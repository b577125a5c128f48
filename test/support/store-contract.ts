import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { entriesAdmitting } from '../../gateway/store/allowlist.ts';
import { type Store, type StoreStats, StoreWriteError } from '../../gateway/store/store.ts';
import {
  appraisedRound,
  batch,
  DEVICE_ID,
  EK_HASH,
  fullDevice,
  minimalDevice,
  pendingRound,
  postureEvent,
  roundId,
} from '../gateway/fixtures/store-records.ts';

// What every store engine promises through the Store interface (gateway/store/store.ts), as one
// list of tests run against each engine: the same records read back the same way, the same
// orders, the same refusals, writes batched and coalesced, what survives a reopen.

export type EngineStore = Store & { stats(): StoreStats };

export interface EngineOptions {
  readonly maxBatch?: number;
  readonly flushDelayMs?: number;
  readonly onWriteError?: (err: Error) => void;
}

export interface Engine {
  readonly name: string;
  /** A store on a new, empty database; writes are committed only by flush unless flushDelayMs says. */
  open(options?: EngineOptions): Promise<EngineStore>;
  /** Closes the store and opens its database again. */
  reopen(store: EngineStore): Promise<EngineStore>;
  /** Called once after the tests. */
  cleanup(): Promise<void>;
}

async function admits(store: Store, ekHash: string): Promise<boolean> {
  const listed = await store.admitted();
  return entriesAdmitting(ekHash).some((e) => listed.includes(e));
}

export function storeContract(engine: Engine): void {
  const it = suite(`store contract: ${engine.name}`);
  const open: EngineStore[] = [];
  const fresh = async (options?: EngineOptions) => {
    const s = await engine.open(options);
    open.push(s);
    return s;
  };
  const reopen = async (s: EngineStore) => {
    const r = await engine.reopen(s);
    open.push(r);
    return r;
  };
  it.after.each(async () => {
    for (const s of open.splice(0)) await s.close();
  });
  it.after(() => engine.cleanup());

  it('devices round-trip with every field, a UINT64 clock above 2^63 and byte fields included', async () => {
    let store = await fresh();
    const full = fullDevice();
    const other = minimalDevice('0123456789abcdef01234567', `0123456789abcdef01234567${'0'.repeat(40)}`);
    store.saveDevice(full);
    store.saveDevice(other);
    store = await reopen(store);
    const back = await store.device(DEVICE_ID);
    assert.equal(back, full);
    assert.is(back?.clock?.clock, (1n << 63n) + 12_345n);
    assert.instance(back?.ekPublic, Uint8Array);
    assert.equal(await store.device(other.id), other);
    assert.equal(
      (await store.devices()).map((d) => d.id),
      [other.id, DEVICE_ID],
    );
    assert.is(await store.device('ffffffffffffffffffffffff'), undefined);
  });

  it('the largest UINT64 clock survives; a clock outside UINT64 is refused at the call', async () => {
    let store = await fresh();
    const max = {
      ...fullDevice(),
      clock: { clock: (1n << 64n) - 1n, resetCount: 2 ** 32 - 1, restartCount: 0 },
    };
    store.saveDevice(max);
    store = await reopen(store);
    assert.equal((await store.device(DEVICE_ID))?.clock, max.clock);
    assert.throws(
      () => store.saveDevice({ ...max, clock: { clock: 1n << 64n, resetCount: 0, restartCount: 0 } }),
      /clock: expected a UINT64/,
    );
  });

  it('a saved device is replaced, optional fields removed included', async () => {
    const store = await fresh();
    store.saveDevice(fullDevice());
    await store.flush();
    store.saveDevice(minimalDevice());
    assert.equal(await store.device(DEVICE_ID), minimalDevice());
  });

  it('rounds round-trip pending and appraised; a round moves pending → appraised by saving it again', async () => {
    let store = await fresh();
    store.saveDevice(minimalDevice());
    store.saveRound(pendingRound(1));
    store.saveRound(appraisedRound(2));
    store = await reopen(store);
    assert.equal(await store.round(roundId(1)), pendingRound(1));
    assert.equal(await store.round(roundId(2)), appraisedRound(2));
    assert.is(await store.round(roundId(3)), undefined);
    store.saveRound(appraisedRound(1));
    assert.equal(await store.round(roundId(1)), appraisedRound(1));
    assert.equal(await store.pendingRounds(), []);
  });

  it('pendingRounds, recentRounds, latestRounds and rounds select and order', async () => {
    const store = await fresh();
    store.saveDevice(minimalDevice());
    const otherId = '0123456789abcdef01234567';
    store.saveDevice(minimalDevice(otherId, `${otherId}${'0'.repeat(40)}`));
    for (const n of [3, 1, 2]) store.saveRound(pendingRound(n, DEVICE_ID, 'b1'));
    store.saveRound(appraisedRound(4));
    store.saveRound({ ...pendingRound(5, otherId), state: 'stale', codes: ['stale'] });
    store.saveRound(pendingRound(6, otherId));
    assert.equal(
      (await store.pendingRounds()).map((r) => r.id),
      [1, 2, 3, 6].map(roundId),
    );
    assert.equal(
      (await store.recentRounds(DEVICE_ID, 3)).map((r) => r.id),
      [4, 3, 2].map(roundId),
    );
    assert.equal(
      (await store.recentRounds(otherId, 10)).map((r) => r.id),
      [6, 5].map(roundId),
    );
    const latest = await store.latestRounds();
    assert.equal(
      [...latest].map(([d, r]) => [d, r.id]).sort(),
      [
        [otherId, roundId(6)],
        [DEVICE_ID, roundId(4)],
      ].sort(),
    );
    assert.equal(
      (await store.rounds([3, 1, 2, 99].map(roundId))).map((r) => r.id).sort(),
      [1, 2, 3].map(roundId),
    );
    assert.equal(await store.rounds([]), []);
  });

  it('posture events: newest first, limited, per device', async () => {
    let store = await fresh();
    store.saveDevice(minimalDevice());
    for (const at of [1, 2, 3]) store.addPostureEvent(postureEvent(at));
    store.addPostureEvent({ deviceId: DEVICE_ID, at: 4, from: 'unknown', to: 'enrolling', reasons: [] });
    store = await reopen(store);
    assert.equal(await store.postureEvents(DEVICE_ID, 2), [
      { deviceId: DEVICE_ID, at: 4, from: 'unknown', to: 'enrolling', reasons: [] },
      postureEvent(3),
    ]);
    assert.is((await store.postureEvents(DEVICE_ID, 10)).length, 4);
    assert.equal(await store.postureEvents('0123456789abcdef01234567', 10), []);
  });

  it('allowlist: by EK hash or device id, normalised, revocable, malformed entries refused', async () => {
    let store = await fresh();
    const other = 'ab'.repeat(32);
    store.admit(EK_HASH.toUpperCase(), 'line 1');
    assert.ok(await admits(store, EK_HASH));
    assert.not.ok(await admits(store, other));
    store.admit(other.slice(0, 24));
    assert.ok(await admits(store, other), 'admitted by device id');
    store = await reopen(store);
    assert.equal(await store.admitted(), [other.slice(0, 24), EK_HASH]);
    store.revoke(EK_HASH);
    assert.not.ok(await admits(store, EK_HASH));
    assert.throws(() => store.admit('xyz'), /allowlist entry: expected an EK hash \(64 hex digits\).*"xyz"/);
    assert.throws(() => store.revoke('abc'), TypeError);
  });

  it('releases: added, replaced by name and version, removed; a bad digest is refused', async () => {
    let store = await fresh();
    const d1 = 'a'.repeat(64);
    const d2 = 'B'.repeat(64);
    store.addRelease({ name: 'vigil-agent', version: '0.1.0', digest: d1, addedAt: 1 });
    store.addRelease({ name: 'vigil-agent', version: '0.2.0', digest: d1, addedAt: 2 });
    store = await reopen(store);
    store.addRelease({ name: 'vigil-agent', version: '0.1.0', digest: d2, addedAt: 3 });
    assert.equal(await store.releases(), [
      { name: 'vigil-agent', version: '0.2.0', digest: d1, addedAt: 2 },
      { name: 'vigil-agent', version: '0.1.0', digest: d2.toLowerCase(), addedAt: 3 },
    ]);
    store.removeRelease('vigil-agent', '0.2.0');
    store.removeRelease('vigil-agent', '9.9.9');
    assert.is((await store.releases()).length, 1);
    assert.throws(
      () => store.addRelease({ name: 'x', version: '1', digest: 'abc', addedAt: 0 }),
      /release x 1: digest: expected 64 hex digits/,
    );
  });

  it('batches round-trip', async () => {
    let store = await fresh();
    const b = { ...batch('batch-1', [roundId(1), roundId(2)]), unreachable: ['0123456789abcdef01234567'] };
    store.saveBatch(b);
    store = await reopen(store);
    assert.equal(await store.batch('batch-1'), b);
    assert.is(await store.batch('batch-2'), undefined);
  });

  it('writes are batched: 2,000 rounds are a few commits, not 2,000', async () => {
    const store = await fresh({ maxBatch: 500 });
    store.saveDevice(minimalDevice());
    for (let n = 0; n < 2000; n++) store.saveRound(pendingRound(n));
    await store.flush();
    const s = store.stats();
    assert.is(s.writes, 2001);
    assert.is(s.commits, 5, 'four full batches of 500 and the rest at flush');
    assert.is(s.queued, 0);
    assert.is((await store.pendingRounds()).length, 2000);
  });

  it('saves of the same record before a commit coalesce into one write', async () => {
    const store = await fresh();
    const d = minimalDevice();
    store.saveDevice(d);
    store.saveRound(pendingRound(1));
    for (let i = 0; i < 99; i++) store.saveDevice({ ...d, lastSeen: i });
    store.admit(EK_HASH);
    store.revoke(EK_HASH);
    await store.flush();
    const { commits, writes, coalesced, failedWrites, queued } = store.stats();
    assert.equal(
      { commits, writes, coalesced, failedWrites, queued },
      {
        commits: 1,
        writes: 3,
        coalesced: 100,
        failedWrites: 0,
        queued: 0,
      },
    );
    assert.is((await store.device(DEVICE_ID))?.lastSeen, 98);
    assert.not.ok(await admits(store, EK_HASH));
  });

  it('a read sees the writes made before it, whatever is committed', async () => {
    const store = await fresh();
    store.saveDevice(minimalDevice());
    store.saveRound(pendingRound(1));
    store.saveRound(appraisedRound(1));
    assert.equal(await store.device(DEVICE_ID), minimalDevice());
    assert.equal(await store.round(roundId(1)), appraisedRound(1), 'the newest save');
    assert.equal(await store.devices(), [minimalDevice()]);
    assert.equal(await store.pendingRounds(), []);
  });

  it('the timer commits queued writes without an explicit flush', async () => {
    const store = await fresh({ flushDelayMs: 5 });
    store.saveDevice(minimalDevice());
    for (let i = 0; i < 200 && store.stats().commits === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.is(store.stats().commits, 1);
    assert.is(store.stats().queued, 0);
  });

  it('a write the database refuses is reported; the rest of its batch is committed', async () => {
    const errors: Error[] = [];
    const store = await fresh({ onWriteError: (e) => errors.push(e) });
    store.saveDevice(minimalDevice());
    store.saveRound(pendingRound(1, 'ffffffffffffffffffffffff'));
    store.saveRound(pendingRound(2));
    await store.flush();
    assert.is(errors.length, 1);
    assert.instance(errors[0], StoreWriteError);
    assert.match(String(errors[0]?.message), /saveRound 0+1: .*(FOREIGN KEY|foreign key)/);
    assert.equal(
      (await store.pendingRounds()).map((r) => r.id),
      [roundId(2)],
    );
    assert.is(store.stats().failedWrites, 1);
  });

  it('a closed store refuses writes and reads; close is idempotent', async () => {
    const store = await fresh();
    await store.close();
    await store.close();
    assert.throws(() => store.saveDevice(minimalDevice()), /is closed: cannot saveDevice/);
    const read = await store.devices().then(
      () => 'read',
      (e: Error) => e.message,
    );
    assert.match(read, /is closed/);
  });

  it('retention: settled rounds before the cut go oldest first, in bounded steps; pending rounds stay', async () => {
    const store = await fresh();
    store.saveDevice(fullDevice());
    for (let n = 1; n <= 5; n++) store.saveRound(appraisedRound(n));
    store.saveRound(pendingRound(6));
    const cut = pendingRound(4).issuedAt;
    assert.is(await store.pruneRounds(cut, 2), 2, 'a step deletes at most its limit');
    assert.equal(await store.round(roundId(1)), undefined, 'the oldest go first');
    assert.ok(await store.round(roundId(3)));
    assert.is(await store.pruneRounds(cut, 100), 1);
    assert.is(await store.pruneRounds(cut, 100), 0);
    assert.is(await store.pruneRounds(pendingRound(100).issuedAt, 100), 2, 'pending kept whatever its age');
    assert.equal(
      (await store.pendingRounds()).map((r) => r.id),
      [roundId(6)],
    );
  });

  it('everything survives a reopen, and the engine finds the database consistent', async () => {
    let store = await fresh();
    store.saveDevice(fullDevice());
    store.saveRound(pendingRound(1, DEVICE_ID, 'b'));
    store.saveBatch(batch('b', [roundId(1)]));
    store.addPostureEvent(postureEvent(5));
    store.admit(EK_HASH);
    store = await reopen(store);
    assert.equal(await store.pendingRounds(), [pendingRound(1, DEVICE_ID, 'b')]);
    assert.equal(await store.devices(), [fullDevice()]);
    assert.equal(await store.batch('b'), batch('b', [roundId(1)]));
    assert.ok(await admits(store, EK_HASH));
    assert.is((await store.postureEvents(DEVICE_ID, 1)).length, 1);
    assert.is(await store.integrityCheck(), 'ok');
  });

  it.run();
}
