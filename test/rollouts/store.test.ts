import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createRollout, step } from '../../gateway/rollouts/machine.ts';
import { MIGRATIONS } from '../../gateway/store/migrations.ts';
import { SqliteStore } from '../../gateway/store/sqlite.ts';
import { rolloutSpec } from '../gateway/fixtures/store-records.ts';
import { removeDir, tempDir } from '../support/tmp.ts';

// Rollouts and swarm floors in the SQLite store: a rollout stored after a step comes back exactly
// (commands in flight included), across a reopen; the newest first; a floor per swarm and software.

const it = suite('rollouts in the store');
const dirs: string[] = [];
it.after(() => {
  for (const d of dirs) removeDir(d);
});

const spec = rolloutSpec;

it('a rollout comes back as stored, in flight commands and all; newest first; floors per swarm', async () => {
  const dir = tempDir('vigil-rollout-store-');
  dirs.push(dir);
  const file = `${dir}/vigil.db`;
  let store = new SqliteStore(file);
  let n = 0;
  const ctx = { now: 100, newId: () => `c${++n}`, fresh: () => true };
  const older = step(
    createRollout(spec('r-000000000001', 'line=a'), ['m1', 'm2'], 50),
    { kind: 'start' },
    ctx,
  ).rollout;
  const newer = { ...createRollout(spec('r-000000000002', 'line=b'), ['m3'], 60), updatedAt: 200 };
  store.saveRollout(older);
  store.saveRollout(newer);
  assert.equal(await store.rollout('r-000000000001'), older, 'a queued rollout reads back before its commit');
  await store.close();

  store = new SqliteStore(file);
  try {
    assert.equal(await store.rollout('r-000000000001'), older);
    assert.equal(Object.keys(older.inflight), ['c1'], 'the canary was staged');
    assert.equal(
      (await store.rollouts()).map((r) => r.spec.id),
      ['r-000000000002', 'r-000000000001'],
    );
    assert.is(await store.rollout('r-nope'), undefined);

    store.saveSwarmFloor({
      swarm: 'line=a',
      name: 'app',
      seq: 2,
      digest: 'ab'.repeat(32),
      rollout: 'r-1',
      committedAt: 5,
    });
    store.saveSwarmFloor({
      swarm: 'line=a',
      name: 'app',
      seq: 3,
      digest: 'cd'.repeat(32),
      rollout: 'r-2',
      committedAt: 6,
    });
    store.saveSwarmFloor({
      swarm: 'line=a',
      name: 'fw',
      seq: 1,
      digest: 'ef'.repeat(32),
      rollout: 'r-2',
      committedAt: 6,
    });
    assert.equal(
      (await store.swarmFloors('line=a')).map((f) => [f.name, f.seq, f.rollout]),
      [
        ['app', 3, 'r-2'],
        ['fw', 1, 'r-2'],
      ],
    );
    assert.equal(await store.swarmFloors('line=b'), []);
    assert.ok(
      MIGRATIONS.some((m) => m.sql.includes('CREATE TABLE rollouts')),
      'a migration step creates the rollouts table',
    );
    assert.is(await store.integrityCheck(), 'ok');
  } finally {
    await store.close();
  }
});

it.run();
