import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { verifyEar } from '../../gateway/verifier/ear.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import { startTestAgent, type TestAgent, testSoftwareReference } from './support.ts';

const it = suite<{ gw?: TestGateway; agent?: TestAgent }>('onboarding and periodic re-attestation');

it.after(async (ctx) => {
  await ctx.agent?.stop();
  await ctx.gw?.stop();
});

it('onboards with activation, then re-attests periodically on the same connection', async (ctx) => {
  ctx.gw = await startTestGateway({
    policy: {
      admission: { mode: 'open' },
      referenceValues: { software: [testSoftwareReference()] },
      rounds: { periodicMs: 1000, jitter: 0, deadlineMs: 900, expiryMs: 5000 },
    },
  });
  ctx.agent = await startTestAgent(ctx.gw);
  const { agent } = ctx.agent;
  const first = await ctx.agent.nextResult();
  assert.is(first.status, 'affirming', `first result: ${first.reasons.join(',')}`);
  const socket = agent.socket();
  assert.ok(socket);

  const device = ctx.gw.gateway.fleet.get(agent.deviceId);
  assert.is(device?.posture, 'affirming');
  assert.ok(device?.ak, 'the AK is enrolled after activation');
  const rounds = await ctx.gw.gateway.store.recentRounds(agent.deviceId, 10);
  assert.is(rounds[0]?.reason, 'onboard');
  assert.ok(rounds[0]?.activate, 'the onboarding round carried activate');

  for (let i = 0; i < 2; i++) {
    const r = await ctx.agent.nextResult(5000);
    assert.is(r.status, 'affirming');
    assert.is(agent.socket(), socket, 'the agent kept its TLS socket');
  }
  const after = await ctx.gw.gateway.store.recentRounds(agent.deviceId, 10);
  assert.ok(after.length >= 3);
  assert.equal(
    after.slice(0, 2).map((r) => r.reason),
    ['periodic', 'periodic'],
  );
  assert.not.ok(after[0]?.activate, 're-attestation needs no activation');
  const sessions = ctx.gw.gateway.connections.of(agent.deviceId);
  assert.is(sessions.length, 1, 'one connection on the gateway side');
  assert.is(sessions[0]?.connectedAt, ctx.gw.gateway.connections.of(agent.deviceId)[0]?.connectedAt);

  const key = createPublicKey(readFileSync(`${ctx.gw.dir}/ear-key.pem`));
  const ear = verifyEar(first.ear, key) as { submods: Record<string, { 'ear.status': string }> };
  assert.is(ear.submods[agent.deviceId]?.['ear.status'], 'affirming');
});

it.run();
