import { SimDevice, type SimDeviceOptions } from '../../equipment/sim/sim-device.ts';
import type { DashboardGateway } from './dashboard-gateway.ts';

/**
 * Connects a sim device to the dashboard's gateway, recording its EARs from the first one, and
 * waits for its onboarding result. Added to `into` before it connects, so teardown closes it.
 */
export async function connectSim(
  dg: DashboardGateway,
  into: SimDevice[],
  seed: string,
  opts: SimDeviceOptions = {},
): Promise<SimDevice> {
  const d = SimDevice.create({ seed, ...opts });
  into.push(d);
  dg.track(d);
  const first = d.nextResult();
  await d.connect(dg.gw.url, dg.gw.ca);
  await first;
  return d;
}
