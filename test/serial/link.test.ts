import { randomBytes } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { McuCollector } from '../../firmware-shims/serial/collector.ts';
import { type LinkOutcome, SerialLink } from '../../firmware-shims/serial/link.ts';
import { encodeFrame, MAX_FRAME_PAYLOAD } from '../../shared/mcu/frame.ts';
import { encodeMcuResponse, type McuResponse } from '../../shared/mcu/messages.ts';
import { startMcuEmulator } from '../equipment/mcu/emulator.ts';
import { collectProcessFailures } from '../support/process-failures.ts';
import { type PtyPair, startPtyPair } from '../support/pty.ts';
import { startRawMcu } from './raw-mcu.ts';

// The serial link and the collector on real serialport, over socat pseudo-terminals, against
// the MCU emulator or a test playing a broken MCU. Timeouts here are generous deadlines, never
// measurements: what is asserted is which outcome came.

const it = suite('MCU serial link and collector on pseudo-terminals');
const failures = collectProcessFailures({ uncaughtExceptions: true });
const DEADLINE = 3000;
const secret = () => new Uint8Array(randomBytes(32));
const image = new TextEncoder().encode('firmware 1');
const nonce = () => new Uint8Array(randomBytes(32));

const cleanup: (() => Promise<void>)[] = [];
async function pty(): Promise<PtyPair> {
  const p = await startPtyPair();
  cleanup.push(() => p.close());
  return p;
}
function link(path: string): SerialLink {
  const l = new SerialLink({ path });
  cleanup.push(() => l.close());
  return l;
}
async function emulator(path: string, delayMs?: number) {
  const e = await startMcuEmulator({
    path,
    secret: secret(),
    image,
    model: 'm0',
    ...(delayMs && { delayMs }),
  });
  cleanup.push(() => e.close());
  return e;
}
function fault(o: LinkOutcome<unknown>): string {
  return o.ok ? 'ok' : o.fault;
}

it.after.each(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

it('hello and evidence round trips through the emulator', async () => {
  const p = await pty();
  const mcu = await emulator(p.mcuPath);
  const l = link(p.agentPath);
  const hello = await l.request({ t: 'hello' }, DEADLINE);
  assert.ok(hello.ok, JSON.stringify(hello));
  assert.equal(hello.response.idk, mcu.firmware.identityKey);
  assert.equal(hello.response.cert, mcu.firmware.cert);
  const ev = await l.request({ t: 'evidence', nonce: nonce() }, DEADLINE);
  assert.ok(ev.ok, JSON.stringify(ev));
  assert.is(ev.response.t, 'evidence');
  assert.is(mcu.answered, 2);
});

it('noise on the line during a request: the link resends and gets its answer', async () => {
  const p = await pty();
  const mcu = await emulator(p.mcuPath, 200);
  const l = link(p.agentPath);
  const pending = l.request({ t: 'evidence', nonce: nonce() }, DEADLINE);
  await mcu.inject(randomBytes(300));
  await mcu.inject(Uint8Array.of(0));
  const outcome = await pending;
  assert.ok(outcome.ok, JSON.stringify(outcome));
});

it('an MCU that answers only garbage is malformed, with what was wrong', async () => {
  const p = await pty();
  const raw = await startRawMcu(p.mcuPath, () => Uint8Array.of(0, 0x55, 0x13, 0x77, 0));
  cleanup.push(() => raw.close());
  const outcome = await link(p.agentPath).request({ t: 'hello' }, 500);
  assert.is(fault(outcome), 'malformed');
  assert.match((outcome as { detail: string }).detail, /frame-/);
  assert.is(raw.requests.length, 3, 'sent once, then resent twice');
});

it('a truncated answer, with nothing after it, is malformed', async () => {
  const p = await pty();
  const cut = (r: { req: number }) => {
    const whole = encodeFrame(encodeMcuResponse({ t: 'error', req: r.req, code: 'busy' }));
    return whole.subarray(0, whole.length - 4);
  };
  const raw = await startRawMcu(p.mcuPath, cut);
  cleanup.push(() => raw.close());
  const outcome = await link(p.agentPath).request({ t: 'hello' }, 500);
  assert.is(fault(outcome), 'malformed');
  assert.match((outcome as { detail: string }).detail, /cut short/);
});

it('an answer over the maximum frame size is malformed (frame-too-large)', async () => {
  const p = await pty();
  const raw = await startRawMcu(p.mcuPath, () => encodeFrame(new Uint8Array(4000).fill(1), 4000));
  cleanup.push(() => raw.close());
  const l = link(p.agentPath);
  const outcome = await l.request({ t: 'hello' }, 500);
  assert.is(fault(outcome), 'malformed');
  assert.match((outcome as { detail: string }).detail, new RegExp(`frame-too-large.*${MAX_FRAME_PAYLOAD}`));
  // The same link, once a sound MCU is on the line, works again.
  await raw.close();
  await emulator(p.mcuPath);
  const recovered = await l.request({ t: 'hello' }, DEADLINE);
  assert.ok(recovered.ok, JSON.stringify(recovered));
});

it('an MCU that refuses is malformed, naming its code', async () => {
  const p = await pty();
  const raw = await startRawMcu(p.mcuPath, (r) =>
    encodeFrame(encodeMcuResponse({ t: 'error', req: r.req, code: 'busy', detail: 'flashing' })),
  );
  cleanup.push(() => raw.close());
  const outcome = await link(p.agentPath).request({ t: 'hello' }, 500);
  assert.is(fault(outcome), 'malformed');
  assert.match((outcome as { detail: string }).detail, /refused the hello request: busy \(flashing\)/);
});

it('an MCU that never answers is a timeout; a port that does not exist is absent', async () => {
  const p = await pty();
  const silent = await link(p.agentPath).request({ t: 'evidence', nonce: nonce() }, 300);
  assert.is(fault(silent), 'timeout');
  assert.match((silent as { detail: string }).detail, /no answer from .* within/);
  const missing = await link(`${p.agentPath}-nothing`).request({ t: 'hello' }, 300);
  assert.is(fault(missing), 'absent');
  assert.match((missing as { detail: string }).detail, /cannot open .*is the MCU connected\?/);
});

it('unplugged mid-request: absent at once; plugged back: the same link works again', async () => {
  const p = await pty();
  await emulator(p.mcuPath, 1000);
  const l = link(p.agentPath);
  const pending = l.request({ t: 'evidence', nonce: nonce() }, 10 * DEADLINE);
  await new Promise((r) => setTimeout(r, 100));
  await p.stop();
  const outcome = await pending;
  assert.is(fault(outcome), 'absent', 'ended by the line closing, long before its deadline');
  assert.match((outcome as { detail: string }).detail, /closed during the request/);
  assert.is(fault(await l.request({ t: 'hello' }, 300)), 'absent', 'still unplugged');
  await p.start();
  await emulator(p.mcuPath);
  const again = await l.request({ t: 'evidence', nonce: nonce() }, DEADLINE);
  assert.ok(again.ok, JSON.stringify(again));
});

it('a late answer to a request that timed out is not taken for the next one', async () => {
  const p = await pty();
  await emulator(p.mcuPath, 400);
  const l = link(p.agentPath);
  assert.is(fault(await l.request({ t: 'hello' }, 100)), 'timeout');
  const n = nonce();
  const ev = await l.request({ t: 'evidence', nonce: n }, DEADLINE);
  assert.ok(ev.ok, 'the late hello answer was skipped, not taken as the evidence answer');
  assert.is((ev.response as McuResponse).t, 'evidence');
});

it('the collector asks several MCUs at once and reports each; nothing escapes', async () => {
  const [a, b, c] = await Promise.all([pty(), pty(), pty()]);
  const ma = await emulator(a!.mcuPath);
  const mb = await emulator(b!.mcuPath, 100);
  const collector = new McuCollector([
    { slot: 'pump', path: a!.agentPath },
    { slot: 'fan', path: b!.agentPath, baudRate: 115_200 },
    { slot: 'valve', path: c!.agentPath },
    { slot: 'door', path: `${c!.agentPath}-unplugged` },
  ]);
  cleanup.push(() => collector.close());
  const claims = await collector.collect(nonce(), 1000);
  assert.equal([...claims.keys()].sort(), ['door', 'fan', 'pump', 'valve']);
  const pump = claims.get('pump');
  assert.ok(pump?.kind === 'evidence');
  assert.equal(pump.idk, ma.firmware.identityKey);
  const fan = claims.get('fan');
  assert.ok(fan?.kind === 'evidence');
  assert.equal(fan.idk, mb.firmware.identityKey);
  assert.equal(claims.get('valve')?.kind === 'fault' && claims.get('valve'), {
    kind: 'fault',
    fault: 'timeout',
    detail: `no answer from ${c!.agentPath} within 1000 ms`,
  });
  assert.ok(
    claims.get('door')?.kind === 'fault' && (claims.get('door') as { fault: string }).fault === 'absent',
  );
  const hellos = await collector.hello(500);
  assert.ok(hellos.get('pump')?.ok);
  assert.equal(failures.caught, []);
});

it.after(() => {
  failures.stop();
});

it.run();
