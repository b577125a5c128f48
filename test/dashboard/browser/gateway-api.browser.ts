import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { SimDevice } from '../../equipment/sim/sim-device.ts';
import { startTestGateway, type TestGateway } from '../../support/gateway.ts';
import { connectAffirmedSimDevices, simPolicy } from '../../support/sim-devices.ts';
import { type Browser, launchBrowser, signIn } from '../support/browser.ts';

// The dashboard as the gateway's own API server serves it today, started by startGateway with
// nothing more than the operator token: no event feed is passed to it yet, so the page says it
// polls, and still shows the fleet.

interface Ctx {
  gw?: TestGateway;
  browser?: Browser;
  devices: SimDevice[];
}
const it = suite<Ctx>("dashboard in Chromium: the gateway's own API server", { devices: [] });

it.before(async (ctx) => {
  ctx.gw = await startTestGateway({ policy: simPolicy({ periodicMs: 60_000, deadlineMs: 800 }) });
  await connectAffirmedSimDevices(ctx.gw, ctx.devices, 'dash-own-api', 2);
  ctx.browser = await launchBrowser();
});

it.after(async (ctx) => {
  await ctx.browser?.close();
  await Promise.all(ctx.devices.map((d) => d.close()));
  await ctx.gw?.stop();
});

it('serves the page, signs in with the operator token, shows the fleet, polls without a feed', async (ctx) => {
  const page = await ctx.browser!.page();
  await signIn(page, `http://127.0.0.1:${ctx.gw!.gateway.apiPort}/`, ctx.gw!.operatorToken);
  for (const d of ctx.devices)
    await page.locator(`tr[data-device="${d.id}"] .badge`, { hasText: 'affirming' }).waitFor();
  await page.locator('[data-live="polling"]').waitFor();
  assert.equal(ctx.browser!.problems, []);
});

it.run();
