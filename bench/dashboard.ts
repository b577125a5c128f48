import { createHash, randomBytes } from 'node:crypto';
import type { CDPSession, Page } from 'playwright-core';
import { startGateway } from '../gateway/gateway.ts';
import type { DeviceRecord, Posture, RoundRecord } from '../gateway/model.ts';
import { SqliteStore } from '../gateway/store/sqlite.ts';
import { launchBrowser } from '../test/dashboard/support/browser.ts';
import { call, cookieOf } from '../test/dashboard/support/http.ts';
import { removeDir, tempDir } from '../test/support/tmp.ts';
import { info } from './figure.ts';
import { benchGatewayDir } from './gateway-dir.ts';
import { freePort } from './ports.ts';
import { median } from './stats.ts';
import { printTable } from './table.ts';

// The dashboard against a gateway holding 10,000 devices (`npx tsx bench/dashboard.ts [N]`):
// what the first load of the fleet page transfers (gzip, headers included) and how long until
// its first rows show, in Debian's Chromium with its cache off; how long the gateway takes to
// answer a page of the fleet; and how long the virtual table takes to show rows after a jump to
// the middle and after a search. The devices are seeded into the store through its own API
// before the gateway starts (the gateway then loads them as after a restart): the dashboard's
// work does not depend on how the devices got there.

const DEVICES = Number(process.argv[2] ?? 10_000);
const LOADS = 5;
const SWARMS = 20;
const log = (line: string) => process.stderr.write(`${line}\n`);

const hex = (n: number) => randomBytes(n).toString('hex');

function posture(i: number): Posture {
  if (i % 100 === 7) return 'contraindicated';
  if (i % 100 === 8 || i % 100 === 9) return 'stale';
  if (i % 100 === 10) return 'warning';
  return 'affirming';
}

function seed(database: string, now: number): void {
  const store = new SqliteStore(database);
  for (let i = 0; i < DEVICES; i++) {
    const ekHash = createHash('sha256').update(`bench ek ${i}`).digest('hex');
    const id = ekHash.slice(0, 24);
    const p = posture(i);
    const failed = p === 'contraindicated';
    const round: RoundRecord = {
      id: hex(16),
      deviceId: id,
      reason: 'periodic',
      nonce: randomBytes(32),
      pcrs: [0, 7, 14],
      logs: { sw: 1, ima: 0 },
      activate: false,
      issuedAt: now - 60_000,
      deadlineAt: now - 50_000,
      state: p === 'stale' ? 'stale' : 'appraised',
      ...(p !== 'stale' && {
        status: failed ? 'contraindicated' : p === 'warning' ? 'warning' : 'affirming',
      }),
      codes: failed ? ['sw-not-allowed'] : p === 'stale' ? ['stale'] : [],
      ...(failed && { detail: 'app 9.9 (manifest 00…) is not a registered release' }),
      ...(p !== 'stale' && { appraisedAt: now - 59_990 }),
    };
    const device: DeviceRecord = {
      id,
      ekHash,
      ekPublic: randomBytes(90),
      ak: { publicArea: randomBytes(88), name: randomBytes(34), enrolledAt: now - 86_400_000 },
      attester: 'tpm2',
      agent: '0.1.0',
      swPcr: 14,
      labels: { swarm: `swarm-${i % SWARMS}`, site: i % 2 ? 'north' : 'south' },
      posture: p,
      reasons: round.codes,
      ...(p === 'affirming' || p === 'warning' ? { expires: now + 600_000 } : {}),
      firstSeen: now - 86_400_000,
      lastSeen: now - 59_990,
      lastRound: round.id,
    };
    store.saveDevice(device);
    store.saveRound(round);
  }
  store.close();
}

/** Bytes on the wire (headers included) of every response that completed, by URL. */
function transfers(cdp: CDPSession): Map<string, number> {
  const urls = new Map<string, string>();
  const bytes = new Map<string, number>();
  cdp.on('Network.requestWillBeSent', (e) => urls.set(e.requestId, e.request.url));
  cdp.on('Network.loadingFinished', (e) => {
    const url = urls.get(e.requestId);
    if (url) bytes.set(url, (bytes.get(url) ?? 0) + e.encodedDataLength);
  });
  return bytes;
}

// In the page: when the first row of devices appeared, after navigation start.
const FIRST_ROW = `new MutationObserver((_, o) => {
  if (document.querySelector('tr[data-device]')) { window.__firstRow = performance.now(); o.disconnect(); }
}).observe(document, { childList: true, subtree: true });`;

/** ms the page takes, from the action to `selector` existing (measured in the page). */
async function timed(page: Page, action: string, selector: string): Promise<number> {
  return (await page.evaluate(`(async () => {
    const t0 = performance.now();
    ${action};
    while (!document.querySelector(${JSON.stringify(selector)})) await new Promise((r) => requestAnimationFrame(r));
    return performance.now() - t0;
  })()`)) as number;
}

const dir = tempDir('bench-dashboard-');
const now = Date.now();
try {
  const g = benchGatewayDir(dir, { host: '127.0.0.1', port: await freePort() });
  log(`seeding ${DEVICES} devices…`);
  const { loadConfig } = await import('../gateway/config.ts');
  const config = loadConfig(g.dir);
  seed(config.database, now);
  const gateway = await startGateway({
    dir,
    apiPort: 0,
    logger: (await import('pino')).default({ level: 'silent' }),
  });
  const browser = await launchBrowser();
  try {
    const base = `http://127.0.0.1:${gateway.apiPort}/`;
    const token = (await import('node:fs')).readFileSync(config.operatorToken, 'utf8').trim();
    const signIn = await call(base, 'POST', 'v1/session', { origin: base.slice(0, -1), body: { token } });
    const [name, value] = cookieOf(signIn).split('=') as [string, string];
    await browser.context.addCookies([{ name, value, url: base }]);
    // The first request builds the bundle (a gateway run from source): not part of a page load.
    await call(base, 'GET', '');

    const api: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      const r = await call(base, 'GET', 'v1/fleet?limit=100&offset=5000', { token });
      api.push(performance.now() - t0);
      if (r.status !== 200) throw new Error(r.text);
    }

    const firstRow: number[] = [];
    const bytes: number[] = [];
    let breakdown: [string, number][] = [];
    for (let run = 0; run < LOADS; run++) {
      const page = await browser.page();
      const cdp = await browser.context.newCDPSession(page);
      await cdp.send('Network.enable');
      await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
      const got = transfers(cdp);
      await page.addInitScript({ content: FIRST_ROW });
      await page.goto(base);
      // A function, not a string: the page's CSP forbids eval, and Playwright would eval a string.
      await page.waitForFunction(() => (globalThis as { __firstRow?: number }).__firstRow !== undefined);
      firstRow.push((await page.evaluate('window.__firstRow')) as number);
      // Everything the page asks for at load (the chart's code and data come just after the
      // first render); the event stream never completes and is not counted (a few hundred bytes).
      await page.locator('.activity canvas').waitFor();
      await page.waitForLoadState('networkidle').catch(() => {});
      await page.waitForTimeout(300);
      const total = [...got.values()].reduce((a, b) => a + b, 0);
      bytes.push(total);
      breakdown = [...got].map(([url, n]) => [url.replace(base, '/'), n]);
      await page.close();
    }
    if (browser.problems.length > 0) throw new Error(browser.problems.join('; '));

    const page = await browser.page();
    await page.goto(base);
    await page.locator('tr[data-device]').first().waitFor();
    const middle = Math.floor(DEVICES / 2);
    const jump = await timed(
      page,
      `const s = document.querySelector('.fleet-scroll'); s.scrollTop = ${middle} * 44 + s.querySelector('thead').offsetHeight`,
      `tr[aria-rowindex="${middle + 2}"][data-device]`,
    );
    const sample = createHash('sha256')
      .update(`bench ek ${DEVICES - 3}`)
      .digest('hex')
      .slice(0, 24);
    const search = await timed(
      page,
      `const i = document.querySelector('.toolbar input'); i.value = ${JSON.stringify(sample.slice(0, 10))}; i.dispatchEvent(new Event('input', { bubbles: true }))`,
      `tr[data-device="${sample}"]`,
    );
    await page.close();

    const figures = [
      info('dashboard first load, bytes transferred (gzip, headers included)', median(bytes), 'B', {
        runs: bytes,
        breakdown,
      }),
      info(`dashboard time to first rows, ${DEVICES} devices`, median(firstRow), 'ms', { runs: firstRow }),
      info(`GET /v1/fleet page of 100 of ${DEVICES}`, median(api), 'ms'),
      info('virtual table: rows after a jump to the middle', jump, 'ms'),
      info('virtual table: rows after a search by id', search, 'ms'),
    ];
    process.stderr.write(printTable(figures));
    for (const [url, n] of breakdown) log(`  ${String(n).padStart(7)}  ${url}`);
    process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
  } finally {
    await browser.close();
    await gateway.close();
  }
} finally {
  removeDir(dir);
}
