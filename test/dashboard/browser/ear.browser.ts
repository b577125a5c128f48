import type { Page } from 'playwright-core';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { EarView } from '../../../gateway/api/routes/rounds.ts';
import { signIn } from '../support/browser.ts';
import { type DashboardCtx, withDashboard } from '../support/browser-suite.ts';
import { forgeAffirming } from '../support/forge-ear.ts';
import { ROGUE_SOFTWARE } from '../support/rogue.ts';
import { connectSim } from '../support/sim-fleet.ts';

// Each round's EAR checked in the browser (COSE and EAR decoded by shared/, ES256 verified with
// @noble/curves against the gateway's key) rather than taken on the API's word: the check passes
// on what the gateway signed and sent the device, and fails when the result is tampered with on
// its way to the page (here: a contraindicated verdict made affirming, the signature kept).

const it = suite<DashboardCtx>('dashboard in Chromium: EARs checked in the browser', { devices: [] });

const verdict = (page: Page) => page.locator('.ear .ear-verdict');

withDashboard(it, async (ctx) => {
  await connectSim(ctx.dg, ctx.devices, 'dash-ear/good');
  await connectSim(ctx.dg, ctx.devices, 'dash-ear/rogue', { software: [ROGUE_SOFTWARE] });
});

/**
 * Records, at every change of the page, which device the hash asks for, which one the page heads
 * and whose appraisal a verified EAR panel shows, so that a test can see a page answer for a
 * device it was not asked for, even for a moment.
 */
const watchShown = (page: Page) =>
  page.evaluate(`(() => {
    const shown = (window.__shown = []);
    new MutationObserver(() => {
      const head = document.querySelector('.device-page .device-id')?.textContent;
      if (!head) return;
      const ear = document.querySelector('.ear[data-ear-check="verified"] .claims')?.textContent ?? '';
      shown.push([decodeURIComponent(location.hash.replace('#/devices/', '')), head, ear]);
    }).observe(document.getElementById('app'), {
      subtree: true, childList: true, characterData: true, attributes: true,
    });
  })()`);

it('the EAR of the latest round verifies, and its claims match the round shown', async (ctx) => {
  const page = ctx.page!;
  await signIn(page, ctx.dg!.url, ctx.dg!.viewerToken);
  await watchShown(page);
  const [good, rogue] = ctx.devices;
  for (const d of [good!, rogue!]) {
    await page.goto(`${ctx.dg!.url}#/devices/${d.id}`);
    const panel = page.locator(`.device-page[data-device="${d.id}"] .ear[data-ear-check="verified"]`);
    await panel.waitFor();
    const text = (await panel.textContent())!;
    assert.match(text, /Signature verified in this browser/);
    assert.ok(text.includes('The signed claims match the round shown'), text);
    assert.ok(
      text.includes(`${d.id}: ${d === rogue ? 'contraindicated (sw-not-allowed)' : 'affirming'}`),
      text,
    );
  }
  // Going from one device to the next, the page never showed the first under the second's address.
  const shown = (await page.evaluate('window.__shown')) as [string, string, string][];
  assert.ok(
    shown.some(([asked]) => asked === rogue!.id),
    'the page was watched through both devices',
  );
  for (const [asked, head, ear] of shown) {
    assert.is(head, asked, `the page for ${asked} showed ${head}`);
    if (ear) assert.ok(ear.includes(`${asked}: `), `the page for ${asked} showed the EAR of another: ${ear}`);
  }
});

it('a tampered EAR fails the check, and the page says what the forgery claims', async (ctx) => {
  const page = ctx.page!;
  const rogue = ctx.devices[1]!;
  await page.route('**/v1/rounds/*/ear', async (route) => {
    const response = await route.fetch();
    const ear = (await response.json()) as EarView;
    const forged = forgeAffirming(Buffer.from(ear.cwt, 'base64url'), rogue.id);
    await route.fulfill({ response, json: { ...ear, cwt: Buffer.from(forged).toString('base64url') } });
  });
  try {
    assert.ok(page.url().endsWith(`#/devices/${rogue.id}`));
    await page.reload();
    await page.locator('.ear[data-ear-check="failed"]').waitFor();
    assert.match(
      (await verdict(page).textContent())!,
      /Not verified: the signature does not verify with the gateway's EAR key/,
    );
    assert.ok((await page.locator('.ear .claims').textContent())!.includes(`${rogue.id}: affirming`));
  } finally {
    await page.unroute('**/v1/rounds/*/ear');
  }
});

it('nothing went wrong in the page: no error, no CSP violation', (ctx) => {
  assert.equal(ctx.browser!.problems, []);
});

it.run();
