import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { signIn } from '../support/browser.ts';
import { type DashboardCtx, withDashboard } from '../support/browser-suite.ts';
import { connectSim } from '../support/sim-fleet.ts';

// A viewer (viewer.token) watches the fleet and cannot trigger anything: the page offers no
// button for it, and the gateway refuses the request even when the page's own script sends it
// with the session's CSRF token, so hiding the button is not what keeps a viewer out.

const it = suite<DashboardCtx>('dashboard in Chromium: the viewer role', { devices: [] });

withDashboard(it, async (ctx) => {
  await connectSim(ctx.dg, ctx.devices, 'dash-viewer/0');
});

it('a viewer sees the fleet, a device and the rounds page, with no trigger anywhere', async (ctx) => {
  const page = ctx.page!;
  const id = ctx.devices[0]!.id;
  await signIn(page, ctx.dg!.url, ctx.dg!.viewerToken);
  assert.is(await page.locator('[data-role]').textContent(), 'viewer');
  await page.locator(`tr[data-device="${id}"]`).waitFor();
  await page.getByRole('link', { name: 'Rounds' }).click();
  await page.locator('.viewer-note').waitFor();
  assert.is(await page.getByRole('button', { name: 'Start round' }).count(), 0);
  assert.is(await page.locator('form.start-form').count(), 0);
  await page.goto(`${ctx.dg!.url}#/devices/${id}`);
  await page.locator('table.rounds').waitFor();
  assert.is(await page.getByRole('button', { name: 'Attest now' }).count(), 0);
});

it("the gateway refuses a viewer's POST even with the session's CSRF token and Origin", async (ctx) => {
  const reply = (await ctx.page!.evaluate(`(async () => {
    const session = await (await fetch('v1/session')).json();
    const r = await fetch('v1/batches', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-vigil-csrf': session.csrf },
      body: JSON.stringify({ all: true }),
    });
    return { role: session.role, status: r.status, body: await r.json() };
  })()`)) as { role: string; status: number; body: { error: { code: string } } };
  assert.is(reply.role, 'viewer');
  assert.is(reply.status, 403);
  assert.is(reply.body.error.code, 'forbidden');
});

it('nothing went wrong in the page but the refused request', (ctx) => {
  assert.equal(
    ctx.browser!.problems.filter((p) => !/status of 403/.test(p)),
    [],
  );
});

// Last: it signs the shared browser profile out.
it('a sign-in link signs in from its fragment and leaves no token in the address or the history', async (ctx) => {
  await ctx.browser!.context.clearCookies();
  const page = await ctx.browser!.page();
  try {
    await page.goto(`${ctx.dg!.url}#signin=${encodeURIComponent(ctx.dg!.viewerToken)}`);
    await page.locator(`tr[data-device="${ctx.devices[0]!.id}"]`).waitFor();
    assert.is(await page.locator('[data-role]').textContent(), 'viewer');
    const noToken = () =>
      assert.not.ok(page.url().includes('signin') || page.url().includes(ctx.dg!.viewerToken), page.url());
    noToken();
    await page.goBack();
    noToken();
    await ctx.browser!.context.clearCookies();
    await page.goto(`${ctx.dg!.url}#signin=not-the-token`);
    await page.reload();
    await page.locator('main.sign-in').waitFor();
  } finally {
    await page.close();
  }
});

it.run();
