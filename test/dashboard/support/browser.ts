import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { removeDir, tempDir } from '../../support/tmp.ts';

// Debian's Chromium driven by playwright-core (no browser download), headless, in a fresh
// profile directory that is removed afterwards. Every page records what went wrong in it:
// uncaught errors, console errors and Content-Security-Policy violations, for tests to assert
// there were none.

export const CHROMIUM = '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
];

export interface Browser {
  readonly context: BrowserContext;
  /** A new page whose problems are collected into `problems`. */
  page(viewport?: { width: number; height: number }): Promise<Page>;
  readonly problems: string[];
  close(): Promise<void>;
}

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

export async function launchBrowser(): Promise<Browser> {
  const profile = tempDir('chromium-');
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ARGS,
      viewport: DESKTOP,
    });
  } catch (e) {
    removeDir(profile);
    throw e;
  }
  const problems: string[] = [];
  return {
    context,
    problems,
    async page(viewport = DESKTOP) {
      const page = await context.newPage();
      await page.setViewportSize(viewport);
      page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
      });
      await page.exposeFunction('__cspViolation', (text: string) => problems.push(`CSP violation: ${text}`));
      // Runs in the page (a string: this file is typed for Node, not the DOM).
      await page.addInitScript({
        content: `document.addEventListener('securitypolicyviolation', (e) =>
          window.__cspViolation(e.violatedDirective + ' ' + e.blockedURI));`,
      });
      return page;
    },
    async close() {
      try {
        await context.close();
      } finally {
        removeDir(profile);
      }
    },
  };
}

/** Opens the dashboard and signs in with a token; resolves once the fleet page is up. */
export async function signIn(page: Page, url: string, token: string): Promise<void> {
  await page.goto(url);
  await page.getByLabel('Token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('.fleet-page').waitFor();
}
