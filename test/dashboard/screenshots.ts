import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Page } from 'playwright-core';
import type { SimDevice } from '../equipment/sim/sim-device.ts';
import { simPolicy } from '../support/sim-devices.ts';
import { DESKTOP, launchBrowser, PHONE, signIn } from './support/browser.ts';
import { startDashboardGateway } from './support/dashboard-gateway.ts';
import { batchDone, call } from './support/http.ts';
import { startRolloutSwarm } from './support/rollout-swarm.ts';
import { connectSim } from './support/sim-fleet.ts';

// The README's screenshots of the dashboard (docs/dashboard/*.png), taken in Debian's Chromium
// from a real gateway with a small sim fleet: a few swarms, one device running an unregistered
// build (contraindicated), one that stopped answering (stale). The rollouts pages come from a
// second gateway whose swarm is three real agents on swtpm (sims do not update): rolled to a
// release, then an operation released behind the barrier.
//
//   npx tsx test/dashboard/screenshots.ts [OUT_DIR]     (default docs/dashboard)
//   pngquant --force --ext .png --quality 70-95 docs/dashboard/*.png   (a third of the size)

const out = resolve(process.argv[2] ?? 'docs/dashboard');
mkdirSync(out, { recursive: true });

const shoot = async (page: Page, name: string, fullPage = false) => {
  await page.waitForTimeout(600);
  await page.screenshot({ path: join(out, `${name}.png`), fullPage });
  process.stderr.write(`wrote ${join(out, `${name}.png`)}\n`);
};

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

const swarm = await startRolloutSwarm(3, 'line=press');
const shots = await launchBrowser();
try {
  const api = <T>(method: string, path: string, body?: object) =>
    call<T>(swarm.url, method, path, { token: swarm.operatorToken, ...(body && { body }) });
  const started = await api<{ rollout: { id: string } }>('POST', 'v1/rollouts', {
    swarm: 'line=press',
    release: 'app@2.0.0',
    waves: '1,100%',
  });
  const id = started.json.rollout.id;
  const page = await shots.page(DESKTOP);
  await signIn(page, swarm.url, swarm.operatorToken);
  await page.goto(`${swarm.url}#/rollouts/${id}`);
  await page.locator('.rollout-page[data-phase="completed"]').waitFor({ timeout: 60_000 });
  await api('POST', `v1/rollouts/${id}/operations`, { name: 'recipe', args: { recipe: 'b' } });
  await page.locator('article.operation[data-state="done"]').waitFor({ timeout: 15_000 });
  await shoot(page, 'rollout-desktop', true);
  await page.goto(`${swarm.url}#/rollouts`);
  await page.locator(`tr[data-rollout="${id}"]`).waitFor();
  await shoot(page, 'rollouts-desktop');
  if (shots.problems.length > 0) throw new Error(`problems in the page: ${shots.problems.join('; ')}`);
} finally {
  await shots.close();
  await swarm.stop();
}
