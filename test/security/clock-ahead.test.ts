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
  reboot,
  restoreTpm,
  setTpmClock,
  snapshotTpm,
  type Testbed,
} from './testbed.ts';

// A clone (a copy of the TPM's state restored later) that hides its age: moved forward with
// TPM2_ClockSet so that its clock is not older than the last one the gateway saw, or rebooted
// until its resetCount passes the last one seen. What the clock can still reveal: a TPM clock
// runs with real time at most, and not while the TPM is off, so a clock that ran further than the
// wall time since the last round allows (with a tolerance for a TPM's rate and the gateway's own
// clock) was set forward. That is clock-rollback, reset or not. What it cannot (the last two
// tests, known limits): a clone moved ahead by no more than that, or one rebooted past the
// resetCount seen, since a TPM's clock may go back across a reset by any amount.

const HOUR = 3_600_000n;

interface Ctx extends Testbed {
  snapshot: string;
}
const it = suite<Ctx>('a clone whose clock hides its age');

it.before(async (ctx) => {
  ctx.snapshot = mkdtempSync(join(tmpdir(), 'vigil-tpm-snapshot-'));
  // The clone is taken before a reboot, so that restored and booted it counts the resetCount the
  // gateway sees next.
  await openTestbed(ctx, {
    beforeAttest: async (device) => {
      snapshotTpm(device, ctx.snapshot);
      await reboot(device);
    },
  });
});

it.after(async (ctx) => {
  await closeTestbed(ctx);
  if (ctx.snapshot) rmSync(ctx.snapshot, { recursive: true, force: true });
});

/** An on-demand round answered by whatever TPM state the device has now. */
async function round(ctx: Ctx) {
  const c = await onDemandRound(ctx.gw, ctx.device, ctx.conn);
  const ev = await ctx.device.answer(ctx.conn, c);
  const r = expectMessage(await ctx.conn.next(), 'result');
  const detail = (await ctx.gw.gateway.store.round(toHex(c.round)))?.detail;
  return { r, quoted: parseQuoteAttest(ev.attest).clock, detail };
}

const seenClock = (ctx: Ctx) => ctx.gw.gateway.fleet.get(ctx.device.id)!.clock!;

it('the clone with its clock set an hour past the last one seen: clock-rollback (ran ahead of wall time)', async (ctx) => {
  const seen = seenClock(ctx);
  await restoreTpm(ctx.device, ctx.snapshot);
  await setTpmClock(ctx.device, seen.clock + HOUR);
  const { r, quoted, detail } = await round(ctx);
  assert.is(quoted.resetCount, seen.resetCount, 'the resetCount seen: no rollback of it');
  assert.ok(quoted.clock > seen.clock, 'and a clock past the one seen');
  assert.equal(r.reasons, ['clock-rollback']);
  assert.match(detail ?? '', /TPM clock ran \d+ ms ahead .* in \d+ ms of wall time/);
  assert.is(ctx.gw.gateway.fleet.get(ctx.device.id)!.posture, 'contraindicated');
  assert.equal(seenClock(ctx), seen, 'the recorded clock stays the one seen');
});

it('the clone rebooted past the resetCount seen and set an hour ahead: clock-rollback too', async (ctx) => {
  const seen = seenClock(ctx);
  await restoreTpm(ctx.device, ctx.snapshot);
  await reboot(ctx.device);
  await setTpmClock(ctx.device, seen.clock + HOUR);
  const { r, quoted, detail } = await round(ctx);
  assert.ok(quoted.resetCount > seen.resetCount, 'a reset, as far as resetCount tells');
  assert.equal(r.reasons, ['clock-rollback']);
  assert.match(detail ?? '', /TPM clock ran \d+ ms ahead/);
});

it('known limit: the clone set ahead by less than the wall time since the last round allows', async (ctx) => {
  const seen = seenClock(ctx);
  await restoreTpm(ctx.device, ctx.snapshot);
  await setTpmClock(ctx.device, seen.clock + 5000n);
  const { r } = await round(ctx);
  // Documented in docs/security.md: such a clone is indistinguishable by its clock.
  assert.is(r.status, 'affirming', r.reasons.join());
});

it('known limit: the clone rebooted past the resetCount seen, its clock behind', async (ctx) => {
  const seen = seenClock(ctx);
  await restoreTpm(ctx.device, ctx.snapshot);
  await reboot(ctx.device);
  const { r, quoted } = await round(ctx);
  assert.ok(quoted.resetCount > seen.resetCount && quoted.clock < seen.clock);
  // A reboot, as far as clockInfo can tell: documented in docs/security.md.
  assert.is(r.status, 'affirming', r.reasons.join());
});

it.run();
