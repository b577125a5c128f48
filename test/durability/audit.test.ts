import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { toHex } from '../../shared/tpm/index.ts';
import { startTestAgent, type TestAgent, testSoftwareReference } from '../e2e/support.ts';
import { SIM_SOFTWARE, softwareReference } from '../equipment/sim/attester.ts';
import type { SimDevice } from '../equipment/sim/sim-device.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import { eventually } from '../support/operator.ts';
import { gatewayCli, run } from '../support/run.ts';
import { connectAffirmedSimDevices } from '../support/sim-devices.ts';
import { tempDir } from '../support/tmp.ts';

// `vigil-gateway audit` on a round made by the real agent on swtpm: the export passes
// tpm2_checkquote and the shell recipe's extraData equals the quote's qualifying data, all run by
// the export's own check.sh with standard tools; the same export with its body altered fails
// both. A round whose evidence is gone (never arrived, or pruned) says so.

interface Ctx {
  gw?: TestGateway;
  agent?: TestAgent;
  sims: SimDevice[];
}
const it = suite<Ctx>('audit export of a stored round', { sims: [] });

it.before(async (ctx) => {
  ctx.gw = await startTestGateway({
    policy: {
      admission: { mode: 'open' },
      allowSim: true,
      referenceValues: { software: [testSoftwareReference(), softwareReference(SIM_SOFTWARE)] },
      rounds: { periodicMs: 600_000, deadlineMs: 2000 },
    },
  });
});

it.after(async (ctx) => {
  await Promise.all(ctx.sims.map((d) => d.close()));
  await ctx.agent?.stop();
  await ctx.gw?.stop();
});

const cli = (gw: TestGateway, args: string[]) => gatewayCli([...args, '--dir', gw.dir]);

const CHECKS = ['binding', 'quote', 'nonce', 'ear-cwt', 'ear-jwt', 'ear-round'];

it("the real agent's onboarding round re-verifies with tpm2_checkquote and the recipe; an altered body fails both", async (ctx) => {
  const gw = ctx.gw!;
  const first = (async () => {
    ctx.agent = await startTestAgent(gw);
    return ctx.agent.nextResult(20_000);
  })();
  const result = await first;
  assert.is(result.status, 'affirming');
  const round = toHex(result.round);
  await gw.gateway.store.flush();

  const out = join(tempDir('audit'), 'export');
  const exported = await cli(gw, ['audit', round, '--out', out]);
  assert.is(exported.code, 0, exported.stderr);
  assert.match(exported.stdout, `round ${round} of device ${ctx.agent!.agent.deviceId} (affirming) exported`);
  const meta = JSON.parse(readFileSync(join(out, 'round.json'), 'utf8'));
  assert.is(meta.akSource, 'round');
  assert.ok(meta.round.activate, 'the onboarding round, with its activation');

  const checked = await run('bash', [join(out, 'check.sh')]);
  assert.is(checked.code, 0, checked.stdout + checked.stderr);
  for (const c of CHECKS) assert.match(checked.stdout, new RegExp(`^PASS ${c}$`, 'm'));
  const recomputed = /recomputed extraData: ([0-9a-f]{64})/.exec(checked.stdout)?.[1];
  const quoted = /quoted extraData: +([0-9a-f]{64})/.exec(checked.stdout)?.[1];
  assert.ok(recomputed, checked.stdout);
  assert.is(recomputed, quoted, "the recipe's extraData is the quote's qualifying data");
  assert.match(readFileSync(join(out, 'README'), 'utf8'), /tpm2_checkquote -u ak\.pem/);

  // One byte of the body altered: the binding no longer holds and the quote does not check.
  const altered = join(tempDir('audit'), 'altered');
  cpSync(out, altered, { recursive: true });
  const body = readFileSync(join(altered, 'body.cbor'));
  body[body.length - 1]! ^= 0x01;
  writeFileSync(join(altered, 'body.cbor'), body);
  const refused = await run('bash', [join(altered, 'check.sh')]);
  assert.is(refused.code, 1, refused.stdout);
  assert.match(refused.stdout, /^FAIL binding$/m);
  assert.match(refused.stdout, /^FAIL quote$/m);
  assert.match(refused.stdout, /^PASS ear-cwt$/m, 'what was not altered still checks');
});

it('a round without evidence, or pruned by retention, says so and exports nothing', async (ctx) => {
  const gw = ctx.gw!;
  await connectAffirmedSimDevices(gw, ctx.sims, 'audit', 1);
  const sim = ctx.sims[0]!;
  sim.silent = true;
  const conn = gw.gateway.connections.askable(sim.id)!;
  const silent = gw.gateway.attestation.start(conn, 'on-demand')!;
  await eventually(async () => (await gw.gateway.store.round(silent.id))?.state === 'stale', 'stale', 5000);
  const none = await cli(gw, ['audit', silent.id, '--out', join(tempDir('audit'), 'none')]);
  assert.is(none.code, 1);
  assert.match(none.stderr, `round ${silent.id} has no evidence to re-verify: it is stale`);
  assert.match(none.stderr, '[evidence-not-found]');

  const onboarding = gw.gateway.fleet.get(sim.id)!;
  const settled = (await gw.gateway.store.recentRounds(sim.id, 10)).find((r) => r.state === 'appraised')!;
  assert.ok(onboarding && settled);
  await gw.gateway.store.pruneRounds(Date.now() + 1, 1000);
  const pruned = await cli(gw, ['audit', settled.id, '--out', join(tempDir('audit'), 'pruned')]);
  assert.is(pruned.code, 1);
  assert.match(pruned.stderr, 'is not in the store: this gateway never issued it, or retention pruned it');
});

it.run();
