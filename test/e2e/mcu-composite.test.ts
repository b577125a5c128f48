import { createPublicKey, type KeyObject, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Agent } from '../../device/agent.ts';
import { initAgent } from '../../device/init.ts';
import type { DeviceDetailView } from '../../gateway/api/views.ts';
import { verifyEarCwt } from '../../gateway/verifier/ear.ts';
import { identityHash } from '../../shared/mcu/index.ts';
import type { Ear } from '../../shared/protocol/ear.ts';
import type { Result } from '../../shared/protocol/index.ts';
import { type McuEmulator, startMcuEmulator } from '../equipment/mcu/emulator.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import { eventually } from '../support/operator.ts';
import { type PtyPair, startPtyPair } from '../support/pty.ts';
import { gatewayCli } from '../support/run.ts';
import { startSwtpm } from '../support/swtpm.ts';
import { tempDir } from '../support/tmp.ts';
import { startTestAgent, type TestAgent, testSoftwareReference, waitFor } from './support.ts';

// A composite device end to end: the agent on swtpm is the lead attester, two MCU emulators sit
// on the other ends of socat pseudo-terminals, real serialport in between, a real gateway
// appraising. The MCUs onboard with the device and re-attest with it on its one connection; the
// pump's firmware changes, and its submodule (then, by policy, the device) turns contraindicated.

const MODEL = 'vigil-emu-m0';
const text = (s: string) => new TextEncoder().encode(s);
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const PUMP_SECRET = new Uint8Array(randomBytes(32));
const PUMP_V1 = text('pump firmware 1.0');
const PUMP_PATCHED = text('pump firmware 1.0, patched in the field');

interface Ctx {
  gw?: TestGateway;
  agent?: TestAgent;
  lines: PtyPair[];
  emulators: McuEmulator[];
}
const it = suite<Ctx>('composite device: the agent and two MCUs on serial lines', {
  lines: [],
  emulators: [],
});

it.after(async (ctx) => {
  await ctx.agent?.stop();
  for (const e of ctx.emulators) await e.close();
  for (const l of ctx.lines) await l.close();
  await ctx.gw?.stop();
});

function policy(pumpOnFailure: 'submodule' | 'device', firmware: readonly string[]) {
  return {
    admission: { mode: 'open' },
    referenceValues: { software: [testSoftwareReference()] },
    rounds: { periodicMs: 1500, jitter: 0, deadlineMs: 1000, expiryMs: 6000 },
    mcus: {
      firmware: { [MODEL]: firmware },
      ...(pumpOnFailure === 'device' && { slots: { pump: { onFailure: 'device' } } }),
      expect: [{ labels: {}, slots: ['fan', 'pump'] }],
    },
  };
}

const cli = (gw: TestGateway, args: string[]) => gatewayCli([...args, '--dir', gw.dir]);

/** The next result the agent receives whose verified EAR satisfies `wanted`. */
function resultWhere(
  agent: Agent,
  key: KeyObject,
  what: string,
  wanted: (r: Result, ear: Ear) => boolean,
): Promise<{ result: Result; ear: Ear }> {
  return waitFor<{ result: Result; ear: Ear }>(
    (resolve) => {
      const onResult = (r: Result) => {
        const ear = verifyEarCwt(r.ear, key);
        if (wanted(r, ear)) resolve({ result: r, ear });
      };
      agent.on('result', onResult);
      return () => agent.off('result', onResult);
    },
    what,
    15_000,
  );
}

it('two MCUs onboard and re-attest with the device; changed firmware contraindicates the submodule, then by policy the device', async (ctx) => {
  ctx.lines = await Promise.all([startPtyPair(), startPtyPair()]);
  const [pumpLine, fanLine] = ctx.lines as [PtyPair, PtyPair];
  const fan = await startMcuEmulator({
    path: fanLine.mcuPath,
    secret: new Uint8Array(randomBytes(32)),
    image: text('fan firmware 2.1'),
    model: MODEL,
  });
  ctx.emulators.push(fan);
  // The pump (re)started with an image: the same device secret, so the same identity.
  let pump: McuEmulator | undefined;
  const flashPump = async (image: Uint8Array): Promise<McuEmulator> => {
    await pump?.close();
    pump = await startMcuEmulator({ path: pumpLine.mcuPath, secret: PUMP_SECRET, image, model: MODEL });
    ctx.emulators.push(pump);
    return pump;
  };
  const genuine = await flashPump(PUMP_V1);
  const pumpId = identityHash(genuine.firmware.identityKey);
  const fanId = identityHash(fan.firmware.identityKey);
  const reference = [hex(genuine.firmware.firmwareDigest), hex(fan.firmware.firmwareDigest)];
  ctx.gw = await startTestGateway({ policy: policy('submodule', reference) });
  const gw = ctx.gw;
  const key = createPublicKey(readFileSync(`${gw.dir}/ear-key.pem`));

  // Provisioned as an installer does it (init --mcu), so the pump can be admitted for this device.
  const swtpm = await startSwtpm();
  const dir = tempDir('vigil-agent-');
  const mcus = [
    { slot: 'pump', path: pumpLine.agentPath },
    { slot: 'fan', path: fanLine.agentPath, baudRate: 115_200 },
  ];
  const init = await initAgent({ dir, gateway: gw.url, ca: gw.caPath, tpm: swtpm.tcti, ek: 'ecc', mcus });
  assert.equal(JSON.parse(readFileSync(`${dir}/agent.json`, 'utf8')).mcus, mcus, 'init wrote the MCUs');
  const id = init.deviceId;
  const admitted = await cli(gw, ['mcu', 'admit', pumpId, '--device', id, '--note', 'pump']);
  assert.is(admitted.code, 0, admitted.stderr);
  assert.match(admitted.stdout, `admitted: MCU ${pumpId} for device ${id}`);
  const post = await fetch(`http://127.0.0.1:${gw.gateway.apiPort}/v1/mcus`, {
    method: 'POST',
    headers: { authorization: `Bearer ${gw.operatorToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ identity: fanId, note: 'fan' }),
  });
  assert.is(post.status, 201);

  ctx.agent = await startTestAgent(gw, { swtpm, dir, mcus });
  const { agent } = ctx.agent;
  const [pumpSub, fanSub] = [`${id}/pump`, `${id}/fan`];

  // Onboarding: the device and both MCUs, each its own affirming submodule of one signed EAR.
  const onboard = await ctx.agent.nextResult();
  assert.is(onboard.status, 'affirming', onboard.reasons.join());
  const ear = verifyEarCwt(onboard.ear, key);
  assert.equal(Object.keys(ear.submods).sort(), [id, fanSub, pumpSub]);
  for (const name of [id, fanSub, pumpSub]) assert.is(ear.submods[name]?.status, 'affirming', name);
  assert.equal(ear.submods[pumpSub]?.trust, { 'instance-identity': 2, executables: 2 });
  const socket = agent.socket();

  // A periodic round on the same connection re-attests all three.
  const periodic = await resultWhere(agent, key, 'a periodic result', () => true);
  const round = await gw.gateway.store.round(hex(periodic.result.round));
  assert.is(round?.reason, 'periodic');
  assert.equal(
    round?.mcus?.map((m) => [m.slot, m.status, m.identity]),
    [
      ['fan', 'affirming', fanId],
      ['pump', 'affirming', pumpId],
    ],
  );
  for (const name of [id, fanSub, pumpSub]) assert.is(periodic.ear.submods[name]?.status, 'affirming');
  assert.is(agent.socket(), socket, 'the same TLS connection');

  // The pump restarts with another image: same identity, another firmware digest.
  const patched = hex((await flashPump(PUMP_PATCHED)).firmware.firmwareDigest);
  const changed = await resultWhere(agent, key, 'the pump contraindicated', (_r, e) =>
    (e.submods[pumpSub]?.codes ?? []).includes('mcu-firmware-changed'),
  );
  assert.is(changed.result.status, 'affirming', 'by default only the submodule');
  assert.is(changed.ear.submods[pumpSub]?.status, 'contraindicated');
  assert.is(changed.ear.submods[pumpSub]?.trust.executables, 33);
  assert.is(changed.ear.submods[fanSub]?.status, 'affirming');
  assert.is(changed.ear.submods[id]?.status, 'affirming');
  assert.is(gw.gateway.fleet.get(id)?.posture, 'affirming');
  const changedRound = await gw.gateway.store.round(hex(changed.result.round));
  const pumpResult = changedRound?.mcus?.find((m) => m.slot === 'pump');
  assert.is(pumpResult?.code, 'mcu-firmware-changed');
  assert.is(pumpResult?.firmware, patched);
  assert.is(pumpResult?.identity, pumpId, 'the same admitted identity');
  assert.is(pumpResult?.onFailure, 'submodule');

  // The policy makes the pump's slot the device's own: the device follows its pump.
  const before = gw.gateway.policy().id;
  gw.writePolicy(policy('device', reference));
  await eventually(() => gw.gateway.policy().id !== before, 'the policy reloaded');
  const strict = await resultWhere(
    agent,
    key,
    'the device contraindicated',
    (r) => r.status === 'contraindicated',
  );
  assert.equal(strict.result.reasons, ['mcu-firmware-changed']);
  assert.is(strict.ear.submods[id]?.status, 'contraindicated');
  assert.equal(strict.ear.submods[id]?.codes, ['mcu-firmware-changed']);
  assert.is(strict.ear.submods[id]?.trust['instance-identity'], 2, "the device's own evidence held");
  assert.is(strict.ear.submods[fanSub]?.status, 'affirming');
  await eventually(() => gw.gateway.fleet.get(id)?.posture === 'contraindicated', 'posture contraindicated');
  assert.equal(gw.gateway.fleet.get(id)?.reasons, ['mcu-firmware-changed']);

  const shown = await cli(gw, ['show', id]);
  assert.is(shown.code, 0, shown.stderr);
  assert.match(
    shown.stdout,
    new RegExp(`${pumpSub} +contraindicated +mcu-firmware-changed +${MODEL} .* device `),
  );
  assert.match(shown.stdout, new RegExp(`${fanSub} +affirming +- +${MODEL}`));
  const view = (await (
    await fetch(`http://127.0.0.1:${gw.gateway.apiPort}/v1/devices/${id}`, {
      headers: { authorization: `Bearer ${gw.operatorToken}` },
    })
  ).json()) as DeviceDetailView;
  assert.equal(
    view.mcus.map((m) => [m.submodule, m.status, m.code, m.onFailure]),
    [
      [fanSub, 'affirming', null, 'submodule'],
      [pumpSub, 'contraindicated', 'mcu-firmware-changed', 'device'],
    ],
  );

  // The genuine image back: the device affirms again, on the connection it never left.
  await flashPump(PUMP_V1);
  await resultWhere(agent, key, 'the device affirming again', (r) => r.status === 'affirming');
  assert.is(agent.socket(), socket, 'every round on the one TLS connection');
});

it.run();
