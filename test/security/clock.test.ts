import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parseQuoteAttest, toHex } from '../../shared/tpm/index.ts';
import { expectMessage } from './support.ts';
import {
  closeTestbed,
  onDemandRound,
  openTestbed,
  readTpmClock,
  reboot,
  restoreTpm,
  setTpmClock,
  snapshotTpm,
  type Testbed,
} from './testbed.ts';

// Reboots and hidden clock rollback (PROTOCOL.md §5 clock-rollback). A reboot raises resetCount:
// accepted, recorded, the software log starts over. The rollback is the one an attacker with the
// device's storage can mount on a firmware TPM or swtpm: restore a copy of the TPM's state taken
// earlier (a clone), so that resetCount is what the gateway last saw but the clock is older.

interface Ctx extends Testbed {
  snapshot: string;
}
const it = suite<Ctx>('reboot and clock rollback');

it.before(async (ctx) => {
  ctx.snapshot = mkdtempSync(join(tmpdir(), 'vigil-tpm-snapshot-'));
  await openTestbed(ctx);
});

it.after(async (ctx) => {
  await closeTestbed(ctx);
  if (ctx.snapshot) rmSync(ctx.snapshot, { recursive: true, force: true });
});

/** Rolls the TPM back to the clone: its next start counts the same reset again, with an older clock. */
const restoreClone = (ctx: Ctx) => restoreTpm(ctx.device, ctx.snapshot);

it('resetCount increased: accepted, recorded, the software log restarts from 0', async (ctx) => {
  const { gw, device, conn: a } = ctx;
  const before = gw.gateway.fleet.get(device.id)!;
  // The clone an attacker keeps for later: the TPM state as it is now.
  snapshotTpm(device, ctx.snapshot);

  await reboot(device);
  // Ten seconds of the device's life pass (TPM2_ClockSet only moves forward, and writes the clock
  // to NV as a TPM does at least every 2^22 ms): the clone is now older than what the gateway
  // sees next. Not more: a clock that runs ahead of wall time is refused (clock-ahead.test.ts).
  await setTpmClock(device, (await readTpmClock(device)) + 10_000n);
  const c = await onDemandRound(gw, device, a);
  const ev = await device.answer(a, c);
  const r = expectMessage(await a.next(), 'result');
  assert.is(r.status, 'affirming', r.reasons.join());
  const quoted = parseQuoteAttest(ev.attest).clock;
  const after = gw.gateway.fleet.get(device.id)!;
  assert.ok(quoted.resetCount > before.clock!.resetCount, 'the TPM reset raised resetCount');
  assert.is(after.clock?.resetCount, quoted.resetCount, 'the new resetCount is recorded');
  assert.is(after.swLog?.resetCount, quoted.resetCount);
  assert.is(after.swLog?.count, 1, 'the log was replayed from 0: one entry since the reset');
  assert.match((await gw.gateway.store.round(toHex(c.round)))?.detail ?? '', /rebooted/);
});

it('a restored copy of the TPM state (same resetCount, older clock): clock-rollback', async (ctx) => {
  const { gw, device, conn: a } = ctx;
  const seen = gw.gateway.fleet.get(device.id)!.clock!;
  await restoreClone(ctx);
  const c = await onDemandRound(gw, device, a);
  const ev = await device.answer(a, c);
  const quoted = parseQuoteAttest(ev.attest).clock;
  assert.is(quoted.resetCount, seen.resetCount, 'the rollback reproduces the resetCount the gateway saw');
  assert.ok(quoted.clock < seen.clock, `the clock went back (${quoted.clock} < ${seen.clock})`);
  const r = expectMessage(await a.next(), 'result');
  assert.equal(r.reasons, ['clock-rollback']);
  const after = gw.gateway.fleet.get(device.id)!;
  assert.is(after.posture, 'contraindicated');
  assert.equal(after.clock, seen, 'the recorded clock stays the newest seen');
  assert.match((await gw.gateway.store.round(toHex(c.round)))?.detail ?? '', /clock went from/);
});

it('known limit: the clone with its clock set just past the last one seen is not revealed by clockInfo', async (ctx) => {
  const { gw, device, conn: a } = ctx;
  const seen = gw.gateway.fleet.get(device.id)!.clock!;
  await restoreClone(ctx);
  // Whoever holds owner authorization (empty here, as on most devices) may move the clock forward;
  // by no more than wall time since the last round allows, with its tolerance, it goes unseen.
  await setTpmClock(device, seen.clock + 30_000n);
  const c = await onDemandRound(gw, device, a);
  const ev = await device.answer(a, c);
  assert.is(parseQuoteAttest(ev.attest).clock.resetCount, seen.resetCount);
  const r = expectMessage(await a.next(), 'result');
  // Documented in docs/security.md: a clock cannot tell a clone moved ahead by a plausible amount
  // from the original; an owner authorization the device's root cannot read is what would stop it.
  assert.is(r.status, 'affirming', r.reasons.join());
});

it.run();
