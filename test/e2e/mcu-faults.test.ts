import { createPublicKey, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { McuPort } from '../../firmware-shims/serial/config.ts';
import { verifyEarCwt } from '../../gateway/verifier/ear.ts';
import { encodeFrame, identityHash, type McuRequest, type McuResponse } from '../../shared/mcu/index.ts';
import type { Ear } from '../../shared/protocol/ear.ts';
import { toHex } from '../../shared/tpm/index.ts';
import { type McuEmulator, startMcuEmulator } from '../equipment/mcu/emulator.ts';
import { McuFirmware } from '../equipment/mcu/firmware.ts';
import { answerOf, frameAnswer, type RawMcu, startRawMcu } from '../serial/raw-mcu.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import { collectProcessFailures } from '../support/process-failures.ts';
import { type PtyPair, startPtyPair } from '../support/pty.ts';
import { startTestAgent, type TestAgent, testSoftwareReference } from './support.ts';

// One device, every way an MCU line goes wrong, in the same rounds: noise, a frame cut short, a
// frame over the maximum, an MCU unplugged mid-round, one that never answers, one the policy
// expects and the device does not have; and attacks on the UART: evidence replayed from the
// previous round, fresh evidence relayed from another device's MCU, a forged signature, an MCU
// nobody admitted. A genuine MCU sits among them. Each round completes before its deadline, each
// MCU gets its own code, the device's own attestation stays affirming, and the agent carries on.

const MODEL = 'vigil-emu-m0';
const IMAGE = new TextEncoder().encode('sensor firmware 3.2');
const OTHER_DEVICE = 'ffffffffffffffffffffffff';
const firmware = () =>
  new McuFirmware({ secret: new Uint8Array(randomBytes(32)), image: IMAGE, model: MODEL });

interface Ctx {
  gw?: TestGateway;
  agent?: TestAgent;
  lines: PtyPair[];
  closers: (() => Promise<void>)[];
}
const it = suite<Ctx>('MCU faults and attacks on the serial line, end to end', { lines: [], closers: [] });
const failures = collectProcessFailures({ uncaughtExceptions: true });

it.after(async (ctx) => {
  await ctx.agent?.stop();
  for (const c of ctx.closers.reverse()) await c();
  for (const l of ctx.lines) await l.close();
  await ctx.gw?.stop();
  failures.stop();
});

/** What each slot's MCU must be appraised as, in the first round and in the second, and why. */
const EXPECTED: Record<string, [first: string, second: string, detail: RegExp | [RegExp, RegExp]]> = {
  good: ['affirming', 'affirming', /^$/],
  garbage: ['mcu-malformed', 'mcu-malformed', /malformed: no valid answer .*frame-/],
  truncated: ['mcu-malformed', 'mcu-malformed', /a frame was cut short/],
  oversized: ['mcu-malformed', 'mcu-malformed', /frame-too-large/],
  unplugged: ['mcu-absent', 'mcu-absent', [/absent: .* closed during the request/, /absent: cannot open/]],
  silent: ['mcu-absent', 'mcu-absent', /timeout: no answer from .* within/],
  replay: ['affirming', 'mcu-binding-mismatch', /replayed or moved evidence/],
  relay: ['mcu-identity-unknown', 'mcu-identity-unknown', /admitted for device f{24} only, not .*: relayed/],
  forged: ['mcu-signature-invalid', 'mcu-signature-invalid', /^ev does not verify/],
  stranger: ['mcu-identity-unknown', 'mcu-identity-unknown', /is not admitted: .*vigil-gateway mcu admit/],
  door: ['mcu-absent', 'mcu-absent', /the device reported nothing for this MCU/],
};

it('each round completes with a code per MCU; the device stays affirming; the agent carries on', async (ctx) => {
  const slots = Object.keys(EXPECTED).filter((s) => s !== 'door');
  ctx.lines = await Promise.all(slots.map(() => startPtyPair()));
  const line = Object.fromEntries(slots.map((s, i) => [s, ctx.lines[i]!]));
  const raw = async (slot: string, reply: (r: McuRequest) => Uint8Array | undefined): Promise<RawMcu> => {
    const mcu = await startRawMcu(line[slot]!.mcuPath, reply);
    ctx.closers.push(() => mcu.close());
    return mcu;
  };

  const good: McuEmulator = await startMcuEmulator({
    path: line.good!.mcuPath,
    secret: new Uint8Array(randomBytes(32)),
    image: IMAGE,
    model: MODEL,
  });
  ctx.closers.push(() => good.close());
  await raw('garbage', () => Uint8Array.of(0, ...randomBytes(200), 0, ...randomBytes(50), 0));
  await raw('truncated', (r) => frameAnswer(answerOf(good.firmware, r), r.req).subarray(0, 100));
  await raw('oversized', () => encodeFrame(new Uint8Array(3000).fill(7), 3000));
  await raw('unplugged', () => {
    void line.unplugged!.stop();
    return undefined;
  });
  // `silent`: nothing on the MCU's end of its line.

  // A man in the middle on a UART: answers with the genuine MCU's previous answer, its unsigned
  // request id rewritten to the current one.
  const replayed = firmware();
  let previous: McuResponse | undefined;
  await raw('replay', (r) => {
    const fresh = answerOf(replayed, r);
    const answer = previous ?? fresh;
    previous = fresh;
    return frameAnswer(answer, r.req);
  });
  // Fresh evidence, for this very nonce, from a genuine MCU that belongs to another device.
  const neighbour = firmware();
  await raw('relay', (r) => frameAnswer(answerOf(neighbour, r), r.req));
  const forgedBy = firmware();
  await raw('forged', (r) => {
    const a = answerOf(forgedBy, r) as Extract<McuResponse, { t: 'evidence' }>;
    const ev = a.ev.slice();
    ev[ev.length - 1]! ^= 0x01;
    return frameAnswer({ ...a, ev }, r.req);
  });
  const stranger = firmware();
  await raw('stranger', (r) => frameAnswer(answerOf(stranger, r), r.req));

  ctx.gw = await startTestGateway({
    policy: {
      admission: { mode: 'open' },
      referenceValues: { software: [testSoftwareReference()] },
      rounds: { periodicMs: 60_000, deadlineMs: 2000 },
      mcus: {
        firmware: { [MODEL]: [toHex(good.firmware.firmwareDigest)] },
        expect: [
          { labels: {}, slots: ['door', 'good'] },
          { labels: { site: 'elsewhere' }, slots: ['valve'] },
        ],
      },
    },
  });
  const gw = ctx.gw;
  const key = createPublicKey(readFileSync(`${gw.dir}/ear-key.pem`));
  const store = gw.gateway.store;
  for (const f of [good.firmware, replayed, forgedBy])
    store.admitMcu({ identity: identityHash(f.identityKey), admittedAt: 1 });
  store.admitMcu({ identity: identityHash(neighbour.identityKey), device: OTHER_DEVICE, admittedAt: 1 });
  await gw.gateway.refreshPolicy();

  const mcus: McuPort[] = slots.map((slot) => ({ slot, path: line[slot]!.agentPath }));
  ctx.agent = await startTestAgent(gw, { mcus });
  const { agent } = ctx.agent;
  const id = agent.deviceId;

  const check = async (round: 0 | 1) => {
    const result = await ctx.agent!.nextResult(10_000);
    assert.is(result.status, 'affirming', `the device's own attestation: ${result.reasons.join()}`);
    const stored = await store.round(toHex(result.round));
    assert.is(stored?.state, 'appraised', 'answered before the deadline, not stale');
    const ear: Ear = verifyEarCwt(result.ear, key);
    assert.is(ear.submods[id]?.status, 'affirming');
    const seen = Object.fromEntries((stored?.mcus ?? []).map((m) => [m.slot, m]));
    assert.equal(
      Object.keys(seen).sort(),
      Object.keys(EXPECTED).sort(),
      'one result per slot, valve not expected',
    );
    for (const [slot, want] of Object.entries(EXPECTED)) {
      const m = seen[slot]!;
      const code = want[round];
      assert.is(m.code ?? m.status, code, `${slot}: ${m.detail}`);
      const why = Array.isArray(want[2]) ? want[2][round] : want[2];
      assert.match(m.detail ?? '', code === 'affirming' ? /^$/ : why, slot);
      const sub = ear.submods[`${id}/${slot}`];
      assert.is(sub?.status, code === 'affirming' ? 'affirming' : 'contraindicated', slot);
      assert.equal(sub?.codes, code === 'affirming' ? undefined : [code], slot);
    }
    assert.is(gw.gateway.fleet.get(id)?.posture, 'affirming');
  };

  await check(0);
  // The same connection, asked again: the agent kept running through all of it.
  const socket = agent.socket();
  gw.gateway.attestation.start(gw.gateway.connections.of(id)[0]!, 'on-demand');
  await check(1);
  assert.is(agent.socket(), socket);
  assert.equal(failures.caught, [], 'nothing escaped as an uncaught exception');
});

it.run();
