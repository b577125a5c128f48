import * as assert from 'uvu/assert';
import { SIM_SOFTWARE, softwareReference } from '../equipment/sim/attester.ts';
import { SimDevice } from '../equipment/sim/sim-device.ts';
import type { TestGateway } from './gateway.ts';

// Sim devices (test/equipment/sim: software attesters) against a test gateway: the policy that
// lets them in, and a few of them connected and affirmed for tests about what comes after.

/** policy.json for sim devices: open admission, sim attesters allowed, SIM_SOFTWARE a release. */
export function simPolicy(
  rounds: { periodicMs: number; deadlineMs: number },
  opts: { allowSim?: boolean } = {},
) {
  return {
    admission: { mode: 'open' },
    allowSim: opts.allowSim ?? true,
    referenceValues: { software: [softwareReference(SIM_SOFTWARE)] },
    rounds,
  };
}

/**
 * Connects `count` sim devices seeded `${seedPrefix}/${i}`, one at a time, each affirmed on its
 * onboarding round. Each is added to `into` as soon as it exists, so that a test's teardown closes
 * it even when a later one fails.
 */
export async function connectAffirmedSimDevices(
  gw: TestGateway,
  into: SimDevice[],
  seedPrefix: string,
  count: number,
): Promise<void> {
  for (let i = 0; i < count; i++) {
    const d = SimDevice.create({ seed: `${seedPrefix}/${i}` });
    into.push(d);
    const first = d.nextResult();
    await d.connect(gw.url, gw.ca);
    assert.is((await first).status, 'affirming');
  }
}
