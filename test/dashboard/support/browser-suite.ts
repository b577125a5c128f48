import type { Page } from 'playwright-core';
import type { Test } from 'uvu';
import type { SimDevice } from '../../equipment/sim/sim-device.ts';
import { simPolicy } from '../../support/sim-devices.ts';
import { type Browser, launchBrowser } from './browser.ts';
import { type DashboardGateway, startDashboardGateway } from './dashboard-gateway.ts';

// What every browser suite starts before its tests and stops after them, failed or not: a
// dashboard gateway (sim allowed, 800 ms deadlines), the suite's sim devices, Chromium and a page.

export interface DashboardCtx {
  dg?: DashboardGateway;
  browser?: Browser;
  page?: Page;
  /** Every sim device the suite connected, closed at the end. */
  devices: SimDevice[];
}

export function withDashboard<C extends DashboardCtx>(
  it: Test<C>,
  connect: (ctx: C & { dg: DashboardGateway }) => Promise<void>,
): void {
  it.before(async (ctx) => {
    ctx.dg = await startDashboardGateway(simPolicy({ periodicMs: 60_000, deadlineMs: 800 }));
    await connect(ctx as C & { dg: DashboardGateway });
    ctx.browser = await launchBrowser();
    ctx.page = await ctx.browser.page();
  });
  it.after(async (ctx) => {
    await ctx.browser?.close();
    await Promise.all(ctx.devices.map((d) => d.close()));
    await ctx.dg?.stop();
  });
}
