import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Page } from 'playwright-core';
import type { SimDevice } from '../equipment/sim/sim-device.ts';
import { simPolicy } from '../support/sim-devices.ts';
import { DESKTOP, launchBrowser, PHONE, signIn } from './support/browser.ts';
import { startDashboardGateway } from './support/dashboard-gateway.ts';
import { batchDone, call } from './support/http.ts';
import { connectSim } from './support/sim-fleet.ts';

// The README's screenshots of the dashboard (docs/dashboard/*.png), taken in Debian's Chromium
// from a real gateway with a small sim fleet: a few swarms, one device running an unregistered
// build (contraindicated), one that stopped answering (stale).
//
//   npx tsx test/dashboard/screenshots.ts [OUT_DIR]     (default docs/dashboard)
//   pngquant --force --ext .png --quality 70-95 docs/dashboard/*.png   (a third of the size)

const out = resolve(process.argv[2] ?? 'docs/dashboard');
mkdirSync(out, { recursive: true });

const dg = await startDashboardGateway(simPolicy({ periodicMs: 60_000, deadlineMs: 800 }));
const devices: SimDevice[] = [];
const browser = await launchBrowser();
try {
  const swarms = [
    'kitchen',
    'kitchen',
    'kitchen',
    'garage',
    'garage',
    'hall',
    'hall',
    'hall',
    'hall',
    'roof',
  ];
  for (const [i, swarm] of swarms.entries()) {
    const d = await connectSim(dg, devices, `screenshots/${i}`);
    const set = { swarm, site: i < 5 ? 'north' : 'south' };
    await call(dg.url, 'PATCH', `v1/devices/${d.id}/labels`, { token: dg.operatorToken, body: { set } });
  }
  const rogue = await connectSim(dg, devices, 'screenshots/rogue', {
    software: [
      {
        name: 'meter-app',
        version: '2.1.0-dev',
        digest: createHash('sha256').update('unsigned').digest('hex'),
      },
    ],
  });
  await call(dg.url, 'PATCH', `v1/devices/${rogue.id}/labels`, {
    token: dg.operatorToken,
    body: { set: { swarm: 'roof', site: 'south' } },
  });
  const all = await call<{ id: string }>(dg.url, 'POST', 'v1/batches', {
    token: dg.operatorToken,
    body: { all: true },
  });
  await batchDone(dg.url, dg.operatorToken, all.json.id);
  const quiet = devices[3]!;
  quiet.silent = true;
  const one = await call<{ id: string }>(dg.url, 'POST', 'v1/batches', {
    token: dg.operatorToken,
    body: { ids: [quiet.id] },
  });
  await batchDone(dg.url, dg.operatorToken, one.json.id);

  const shoot = async (page: Page, name: string) => {
    await page.waitForTimeout(600);
    await page.screenshot({ path: join(out, `${name}.png`) });
    process.stderr.write(`wrote ${join(out, `${name}.png`)}\n`);
  };
  for (const [size, viewport] of [
    ['desktop', DESKTOP],
    ['phone', PHONE],
  ] as const) {
    const page = await browser.page(viewport);
    if (size === 'desktop') await signIn(page, dg.url, dg.operatorToken);
    else await page.goto(dg.url);
    await page.locator(`tr[data-device="${rogue.id}"]`).waitFor();
    await shoot(page, `fleet-${size}`);
    await page.goto(`${dg.url}#/devices/${rogue.id}`);
    await page.locator('.ear[data-ear-check="verified"]').waitFor();
    await shoot(page, `device-${size}`);
    await page.close();
  }
  const rounds = await browser.page(DESKTOP);
  await rounds.goto(`${dg.url}#/rounds/${all.json.id}`);
  await rounds.locator(`[data-batch="${all.json.id}"][data-done="true"]`).waitFor();
  await shoot(rounds, 'rounds-desktop');
  if (browser.problems.length > 0) throw new Error(`problems in the page: ${browser.problems.join('; ')}`);
} finally {
  await browser.close();
  await Promise.all(devices.map((d) => d.close()));
  await dg.stop();
}
