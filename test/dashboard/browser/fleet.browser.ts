import type { Page } from 'playwright-core';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { SimDevice } from '../../equipment/sim/sim-device.ts';
import { PHONE, signIn } from '../support/browser.ts';
import { type DashboardCtx, withDashboard } from '../support/browser-suite.ts';
import { call } from '../support/http.ts';
import { MARKUP_LABEL, ROGUE_SOFTWARE } from '../support/rogue.ts';
import { connectSim } from '../support/sim-fleet.ts';

// The dashboard in Debian's Chromium against a real gateway with sim devices: the fleet after
// signing in, a fleet round started from the page and watched to its end, a device turning stale
// while the page looks, a contraindicated device's code and detail, and device-side text with
// markup shown as text. Nothing in these pages is reloaded: a marker set in the page before each
// change must still be there after it.

interface Ctx extends DashboardCtx {
  good: SimDevice[];
  rogue?: SimDevice;
}
const it = suite<Ctx>('dashboard in Chromium: the fleet', { devices: [], good: [] });

const row = (page: Page, id: string) => page.locator(`tr[data-device="${id}"]`);
const count = (page: Page, posture: string) => page.locator(`button[data-posture="${posture}"] .count-n`);

/** Marks the page, to show later that it was not reloaded. */
const mark = (page: Page) => page.evaluate('window.__noReload = true');
const stillSame = async (page: Page) =>
  assert.ok(await page.evaluate("'__noReload' in window"), 'the page was reloaded');
/** Whether any markup from the device side ran (it would set window.__pwned). */
const pwned = (page: Page) => page.evaluate("'__pwned' in window");

withDashboard(it, async (ctx) => {
  for (let i = 0; i < 3; i++) ctx.good.push(await connectSim(ctx.dg, ctx.devices, `dash-fleet/${i}`));
  ctx.rogue = await connectSim(ctx.dg, ctx.devices, 'dash-fleet/rogue', { software: [ROGUE_SOFTWARE] });
  const fleet = ctx.dg.gw.gateway.fleet;
  fleet.save({ ...fleet.get(ctx.good[2]!.id)!, labels: { note: MARKUP_LABEL } });
});

it('signing in shows the fleet: every device, the posture counts, live', async (ctx) => {
  const page = ctx.page!;
  await signIn(page, ctx.dg!.url, ctx.dg!.operatorToken);
  for (const d of ctx.devices) await row(page, d.id).waitFor();
  assert.is(await count(page, 'affirming').textContent(), '3');
  assert.is(await count(page, 'contraindicated').textContent(), '1');
  assert.is(await page.locator('[data-role]').textContent(), 'operator');
  await page.locator('[data-live="live"]').waitFor();
  assert.match((await row(page, ctx.good[0]!.id).textContent())!, /affirming.*onboard/);
});

it('device-side text with markup is text: a label, a software name, a detail', async (ctx) => {
  const page = ctx.page!;
  const labelled = row(page, ctx.good[2]!.id);
  assert.ok((await labelled.textContent())!.includes(`note=${MARKUP_LABEL}`));
  assert.is(await page.locator('#injected').count(), 0, 'no element made from a label');
  assert.is(await page.locator('#app script, #app img, #app b').count(), 0);
  assert.is(await pwned(page), false);
});

it('a contraindicated device shows its code, and its page the detail', async (ctx) => {
  const page = ctx.page!;
  const rogue = ctx.rogue!;
  assert.match((await row(page, rogue.id).textContent())!, /contraindicated.*sw-not-allowed/);
  await row(page, rogue.id).getByRole('link').click();
  const onboarding = page.locator('table.rounds tbody tr[data-round]').first();
  await onboarding.waitFor();
  const text = (await onboarding.textContent())!;
  assert.ok(text.includes('sw-not-allowed'), text);
  assert.ok(text.includes(`${ROGUE_SOFTWARE.name} ${ROGUE_SOFTWARE.version} (manifest`), text);
  assert.ok((await page.locator('.page-head').textContent())!.includes('sw-not-allowed'));
  assert.is(await page.locator('#app img, #app b').count(), 0);
  assert.is(await pwned(page), false);
});

it('a fleet round started from the page is watched live to its end', async (ctx) => {
  const page = ctx.page!;
  await page.getByRole('link', { name: 'Rounds' }).click();
  await mark(page);
  await page.getByLabel('the whole fleet').check();
  await page.getByRole('button', { name: 'Start round' }).click();
  await page.waitForURL(/#\/rounds\/[0-9a-f]{16}$/);
  const id = page.url().split('/').at(-1)!;
  const card = page.locator(`[data-batch="${id}"]`);
  await card.locator('h2', { hasText: 'the whole fleet' }).waitFor();
  await page.locator(`[data-batch="${id}"][data-done="true"]`).waitFor({ timeout: 10_000 });
  assert.is(await card.locator('[data-count="devices"]').textContent(), '4');
  assert.is(await card.locator('[data-count="affirming"]').textContent(), '3');
  assert.is(await card.locator('[data-count="contraindicated"]').textContent(), '1');
  assert.is(await card.locator('[data-count="pending"]').textContent(), '0');
  const failed = card.locator(`table.failures tr[data-device="${ctx.rogue!.id}"]`);
  assert.ok((await failed.textContent())!.includes('sw-not-allowed'));
  await stillSame(page);
});

it('a device turning stale shows up without a reload', async (ctx) => {
  const page = ctx.page!;
  await page.getByRole('link', { name: 'Fleet' }).click();
  const quiet = ctx.good[0]!;
  await row(page, quiet.id).locator('.badge', { hasText: 'affirming' }).waitFor();
  assert.is(await count(page, 'stale').textContent(), '0');
  await mark(page);
  quiet.silent = true;
  try {
    const r = await call(ctx.dg!.url, 'POST', 'v1/batches', {
      token: ctx.dg!.operatorToken,
      body: { ids: [quiet.id] },
    });
    assert.is(r.status, 201, r.text);
    await row(page, quiet.id).locator('.badge', { hasText: 'stale' }).waitFor({ timeout: 10_000 });
    await page.locator('button[data-posture="stale"] .count-n', { hasText: '1' }).waitFor();
    await stillSame(page);
  } finally {
    quiet.silent = false;
  }
});

it('the fleet and device pages fit a phone, with no sideways scrolling', async (ctx) => {
  const phone = await ctx.browser!.page(PHONE);
  await phone.goto(ctx.dg!.url);
  await phone.locator(`tr[data-device="${ctx.good[1]!.id}"]`).waitFor();
  const overflow = () => phone.evaluate('document.documentElement.scrollWidth - window.innerWidth');
  assert.is(await overflow(), 0, 'fleet page');
  await phone.goto(`${ctx.dg!.url}#/devices/${ctx.rogue!.id}`);
  await phone.locator('table.rounds').waitFor();
  assert.is(await overflow(), 0, 'device page');
  await phone.close();
});

it('nothing went wrong in the page: no error, no CSP violation', (ctx) => {
  assert.equal(ctx.browser!.problems, []);
});

it.run();
