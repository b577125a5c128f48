import { createPublicKey } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { verifyEar } from '../../gateway/verifier/ear.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import { startSwtpm } from '../support/swtpm.ts';
import { startTestAgent, type TestAgent, testSoftwareReference } from './support.ts';

// Admission by manufacturer CA (PROTOCOL.md §3, `ek-ca`): a TPM whose EK certificate chains to the
// configured CA onboards and is reported as genuine hardware; a TPM without one is refused.

const it = suite<{ gw?: TestGateway; agents: TestAgent[] }>('ek-ca admission', { agents: [] });

it.after(async (ctx) => {
  for (const a of ctx.agents) await a.stop();
  await ctx.gw?.stop();
});

it('an EK certified by the manufacturer CA onboards, with the EAR hardware claim affirmed', async (ctx) => {
  const certified = await startSwtpm({ ekCert: true });
  // The manufacturer's root and intermediate, as a vendor publishes them.
  const bundle = join(certified.stateDir, '..', 'ek-cas.pem');
  writeFileSync(
    bundle,
    [readFileSync(certified.ca!.root, 'utf8'), readFileSync(certified.ca!.issuer, 'utf8')].join('\n'),
  );
  ctx.gw = await startTestGateway({
    policy: {
      admission: { mode: 'ek-ca', ekCa: bundle },
      referenceValues: { software: [testSoftwareReference()] },
      rounds: { periodicMs: 60_000, deadlineMs: 3000 },
    },
  });
  assert.is(ctx.gw.gateway.policy().admission.manufacturerCas.length, 2);

  const agent = await startTestAgent(ctx.gw, { swtpm: certified });
  ctx.agents.push(agent);
  const result = await agent.nextResult();
  assert.is(result.status, 'affirming', result.reasons.join());
  const key = createPublicKey(readFileSync(join(ctx.gw.dir, 'ear-key.pem')));
  const ear = verifyEar(result.ear, key) as {
    submods: Record<string, { 'ear.trustworthiness-vector': Record<string, number> }>;
  };
  assert.is(
    ear.submods[agent.agent.deviceId]?.['ear.trustworthiness-vector'].hardware,
    2,
    'genuine hardware',
  );
});

it('a TPM without an EK certificate is refused with ek-not-admitted', async (ctx) => {
  const gw = ctx.gw!;
  const agent = await startTestAgent(gw);
  ctx.agents.push(agent);
  const error = await new Promise<{ code: string; detail: string }>((resolve) =>
    agent.agent.once('gateway-error', resolve),
  );
  assert.is(error.code, 'ek-not-admitted');
  assert.match(error.detail, /no ekCert was sent/);
  assert.is(gw.gateway.fleet.get(agent.agent.deviceId), undefined, 'no record for a refused EK');
});

it.run();
