import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type SimFleet, startSimFleet } from '../equipment/sim/fleet.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import { eventually } from '../support/operator.ts';
import { simPolicy } from '../support/sim-devices.ts';

// Reconnect storm: every device of a fleet loses its connection at once (the gateway restarts)
// and comes back with jittered backoff. Each must re-attest within the stated bound, and none may
// be starved: every device gets a result of its own.

const COUNT = Number(process.env.VIGIL_STORM_DEVICES ?? 500);
/** Generous on purpose (2 shared CI cores, everything in one process); a bound, not a benchmark. */
const BOUND_MS = 90_000;

const it = suite<{ gw?: TestGateway; fleet?: SimFleet }>('reconnect storm');

it.after(async (ctx) => {
  await ctx.fleet?.close();
  await ctx.gw?.stop();
});

it(`${COUNT} simulated devices reconnecting at once all re-attest within ${BOUND_MS / 1000} s`, async (ctx) => {
  const gw = await startTestGateway({ policy: simPolicy({ periodicMs: 600_000, deadlineMs: 30_000 }) });
  ctx.gw = gw;
  const fleet = startSimFleet({
    url: gw.url,
    ca: gw.ca,
    count: COUNT,
    concurrency: 64,
    connect: { reconnect: { baseMs: 200, capMs: 3000 } },
    readyTimeoutMs: BOUND_MS,
  });
  ctx.fleet = fleet;
  await fleet.ready;
  assert.equal(fleet.refused, [], 'every device onboarded');
  const before = fleet.devices.map((d) => d.resultCount);

  const started = Date.now();
  await gw.restart();
  await eventually(
    () => fleet.devices.every((d, i) => d.resultCount > before[i]!),
    `every device re-attests (${fleet.devices.filter((d, i) => d.resultCount > before[i]!).length} of ${COUNT} so far)`,
    BOUND_MS,
  );
  const took = Date.now() - started;
  const notAffirming = fleet.devices.filter((d) => d.lastResult?.status !== 'affirming').map((d) => d.id);
  assert.equal(notAffirming, [], 'every re-attestation affirming');
  assert.ok(took < BOUND_MS);
  for (const d of fleet.devices.slice(0, 20)) assert.is(gw.gateway.fleet.get(d.id)?.posture, 'affirming');
  assert.is(await gw.gateway.store.integrityCheck(), 'ok');
  if (process.env.VIGIL_TEST_VERBOSE) console.log(`storm: ${COUNT} devices re-attested in ${took} ms`);
});

it.run();
