import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { toHex } from '../../shared/tpm/index.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import { eventually } from '../support/operator.ts';
import { digestOf, ToolsDevice } from '../support/tools-device.ts';
import { startTestAgent, type TestAgent, testSoftwareReference } from './support.ts';

const SOFTWARE = { name: 'tools-fw', version: '1.0', digest: digestOf('tools-fw 1.0 manifest') };

const it = suite<{ gw?: TestGateway; agent?: TestAgent; device?: ToolsDevice }>('gateway restart');

it.after(async (ctx) => {
  await ctx.agent?.stop();
  await ctx.device?.stop();
  await ctx.gw?.stop();
});

it('enrolment, AK, history and pending deadlines survive; the agent reconnects and re-attests', async (ctx) => {
  const gw = await startTestGateway({
    policy: {
      admission: { mode: 'open' },
      referenceValues: {
        software: [
          testSoftwareReference(),
          { name: SOFTWARE.name, version: SOFTWARE.version, digest: toHex(SOFTWARE.digest) },
        ],
      },
      rounds: { periodicMs: 60_000, deadlineMs: 1500 },
    },
  });
  ctx.gw = gw;
  ctx.agent = await startTestAgent(gw);
  const id = ctx.agent.agent.deviceId;
  assert.is((await ctx.agent.nextResult()).status, 'affirming');
  const enrolled = gw.gateway.fleet.get(id)!;
  assert.ok(enrolled.ak);

  // A second device gets a challenge it never answers: its round is pending across the restart.
  const device = await ToolsDevice.create({ software: [SOFTWARE] });
  ctx.device = device;
  const conn = await device.connect(gw.url, gw.ca);
  await device.send(conn, device.hello());
  const onboard = await conn.next();
  assert.is(onboard.t, 'challenge');
  await device.answer(conn, onboard as never);
  assert.is((await conn.next()).t, 'result');
  gw.gateway.attestation.start(gw.gateway.connections.of(device.id)[0]!, 'on-demand');
  const pending = await conn.next();
  assert.is(pending.t, 'challenge');
  const pendingId = toHex((pending as { round: Uint8Array }).round);

  const reattested = ctx.agent.nextResult(15_000);
  await gw.restart();
  await conn.close();

  const after = gw.gateway.fleet.get(id)!;
  assert.equal(after.ak?.name, enrolled.ak?.name, 'the enrolled AK survived');
  assert.is((await gw.gateway.store.round(pendingId))?.state, 'pending', 'the pending round survived');

  const r = await reattested;
  assert.is(r.status, 'affirming', r.reasons.join());
  const rounds = await gw.gateway.store.recentRounds(id, 10);
  assert.is(rounds[0]?.reason, 'onboard');
  assert.not.ok(rounds[0]?.activate, 'no activation after a restart: the AK is still enrolled');
  assert.ok(rounds.length >= 2, 'history from before the restart is kept');
  assert.ok((await gw.gateway.store.postureEvents(id, 10)).length >= 1);

  // The device that went away does not come back before its deadline: stale, as promised.
  await eventually(
    () => gw.gateway.fleet.get(device.id)?.posture === 'stale',
    'the silent device turns stale',
    5000,
  );
  assert.is((await gw.gateway.store.round(pendingId))?.state, 'stale');
  assert.is(await gw.gateway.store.integrityCheck(), 'ok');
});

it.run();
