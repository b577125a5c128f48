import { join } from 'node:path';
import Database from 'better-sqlite3';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { McuAdmissionView } from '../../gateway/mcus/view.ts';
import type { RoundRecord } from '../../gateway/model.ts';
import { MIGRATIONS, migrate } from '../../gateway/store/migrations.ts';
import { SqliteStore } from '../../gateway/store/sqlite.ts';
import { appraisedRound, DEVICE_ID, minimalDevice, pendingRound } from '../gateway/fixtures/store-records.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import { gatewayCli } from '../support/run.ts';
import { removeDir, tempDir } from '../support/tmp.ts';

// MCU admissions and a round's MCU results in the SQLite store (schema step 5), and the operator
// API and CLI over them on a running gateway, whose appraisal policy follows every change.

const it = suite<{ gw?: TestGateway; dirs: string[] }>('MCU admissions: store, API and CLI', { dirs: [] });
const A = 'a'.repeat(64);
interface Reply {
  admitted?: McuAdmissionView | McuAdmissionView[];
  new?: boolean;
  error?: { code: string; message: string };
}
const B = 'b'.repeat(64);

it.after(async (ctx) => {
  await ctx.gw?.stop();
  for (const d of ctx.dirs) removeDir(d);
});

it('admissions: stored, replaced on re-admission, revoked; a malformed one refused before storing', async () => {
  const store = new SqliteStore(':memory:');
  store.admitMcu({ identity: B, note: 'fan', admittedAt: 2 });
  store.admitMcu({ identity: A, device: DEVICE_ID, admittedAt: 1 });
  assert.equal(await store.mcuAdmissions(), [
    { identity: A, device: DEVICE_ID, admittedAt: 1 },
    { identity: B, note: 'fan', admittedAt: 2 },
  ]);
  store.admitMcu({ identity: A, admittedAt: 3 });
  store.revokeMcu(B);
  assert.equal(await store.mcuAdmissions(), [{ identity: A, admittedAt: 3 }]);
  assert.throws(
    () => store.admitMcu({ identity: 'A'.repeat(64), admittedAt: 1 }),
    /identity: expected 64 lowercase hex/,
  );
  assert.throws(
    () => store.admitMcu({ identity: A, device: 'pump', admittedAt: 1 }),
    /device: expected a device id/,
  );
  store.closeNow();
});

it("a round keeps its MCUs' results; a round without MCUs has none", async () => {
  const store = new SqliteStore(':memory:');
  store.saveDevice(minimalDevice());
  const round: RoundRecord = {
    ...appraisedRound(1),
    mcus: [
      {
        slot: 'fan',
        status: 'contraindicated',
        code: 'mcu-absent',
        detail: 'unplugged',
        onFailure: 'device',
      },
      { slot: 'pump', status: 'affirming', identity: A, model: 'm0', firmware: B, onFailure: 'submodule' },
    ],
  };
  store.saveRound(round);
  store.saveRound(pendingRound(2));
  store.flushNow();
  assert.equal(await store.round(round.id), round);
  assert.not.ok('mcus' in (await store.round(pendingRound(2).id))!);
  store.closeNow();
});

it('step 5 migrates a store of step 4: the rounds it had read back without MCUs', async (ctx) => {
  const dir = tempDir('store');
  ctx.dirs.push(dir);
  const file = join(dir, 'posture.db');
  const db = new Database(file);
  migrate(db, file, MIGRATIONS.slice(0, 4));
  db.close();
  const old = new SqliteStore(file);
  assert.equal(await old.mcuAdmissions(), []);
  assert.is(await old.integrityCheck(), 'ok');
  old.closeNow();
});

it('the API and `vigil-gateway mcu` admit, list and revoke; the appraisal policy follows', async (ctx) => {
  ctx.gw = await startTestGateway();
  const gw = ctx.gw;
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`http://127.0.0.1:${gw.gateway.apiPort}${path}`, {
      method,
      headers: { authorization: `Bearer ${gw.operatorToken}`, 'content-type': 'application/json' },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    return { status: res.status, json: (await res.json()) as Reply };
  };
  const refs = () => gw.gateway.policy().mcus.refs;

  const created = await api('POST', '/v1/mcus', {
    identity: A.toUpperCase(),
    device: DEVICE_ID,
    note: 'pump',
  });
  assert.is(created.status, 201);
  assert.equal(created.json, {
    admitted: {
      identity: A,
      device: DEVICE_ID,
      note: 'pump',
      admittedAt: (created.json.admitted as McuAdmissionView).admittedAt,
    },
    new: true,
  });
  assert.equal(refs().admission(A), { device: DEVICE_ID }, 'in force at once');
  const again = await api('POST', '/v1/mcus', { identity: A });
  assert.equal([again.status, again.json.new], [200, false]);
  assert.equal(refs().admission(A), {}, 're-admitted for any device');

  const bad = await api('POST', '/v1/mcus', { identity: 'pump' });
  assert.equal([bad.status, bad.json.error?.code], [400, 'bad-mcu']);
  assert.match(bad.json.error?.message ?? '', /expected the identity hash, 64 hex digits/);
  const badDevice = await api('POST', '/v1/mcus', { identity: B, device: 'kitchen' });
  assert.match(badDevice.json.error?.message ?? '', /device "kitchen": expected a device id/);
  const unknownKey = await api('POST', '/v1/mcus', { identity: B, slot: 'fan' });
  assert.is(unknownKey.json.error?.code, 'bad-request');

  const listed = await gatewayCli(['mcu', 'list', '--dir', gw.dir]);
  assert.is(listed.code, 0, listed.stderr);
  const list = listed.stdout;
  assert.match(list, new RegExp(`IDENTITY +DEVICE +ADMITTED +NOTE\n${A} +any +`));

  const revoked = await api('DELETE', `/v1/mcus/${A}`);
  assert.is(revoked.status, 200);
  assert.is(refs().admission(A), undefined, 'refused from the next round');
  const missing = await api('DELETE', `/v1/mcus/${A}`);
  assert.equal([missing.status, missing.json.error?.code], [404, 'mcu-not-admitted']);
  assert.equal((await api('GET', '/v1/mcus')).json, { admitted: [] });
});

it.run();
