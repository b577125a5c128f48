import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeCbor } from '../../shared/cbor/encode.ts';
import { deviceIdentity, encodeMessage, topics } from '../../shared/protocol/index.ts';
import { toHex } from '../../shared/tpm/index.ts';
import type { TestGateway } from '../support/gateway.ts';
import { collectProcessFailures, type ProcessFailures } from '../support/process-failures.ts';
import type { Connected, ToolsDevice } from '../support/tools-device.ts';
import { assertUnchanged, deviceState, expectError, expectMessage } from './support.ts';
import { attestedConnection, createDevice, honestRound, onDemandRound, startOpenGateway } from './testbed.ts';

// Malformed and oversized CBOR at every message type, over the wire (PROTOCOL.md §2): each is
// answered `error` with `malformed`, nothing is appraised or stored, and meanwhile an honest
// device completes its rounds on the same gateway.

const SEED = 0x5eed_0009;

interface Ctx {
  gw: TestGateway;
  device: ToolsDevice;
  a: Connected;
  /** An attacker under a device id of its own, and one under the honest device's id. */
  x: Connected;
  xId: string;
  b: Connected;
  failures: ProcessFailures;
}
const it = suite<Ctx>('malformed and oversized input');

it.before(async (ctx) => {
  ctx.failures = collectProcessFailures();
  ctx.gw = await startOpenGateway({ deadlineMs: 10_000 });
  ctx.device = await createDevice();
  ctx.a = await attestedConnection(ctx.gw, ctx.device, { suffix: 'a' });
  ctx.xId = deviceIdentity(new Uint8Array(randomBytes(64))).deviceId;
  ctx.x = await ctx.device.connect(ctx.gw.url, ctx.gw.ca, { username: ctx.xId });
  ctx.b = await ctx.device.connect(ctx.gw.url, ctx.gw.ca, { suffix: 'b' });
});

it.after(async (ctx) => {
  ctx.failures?.stop();
  for (const c of [ctx.a, ctx.x, ctx.b]) await c?.close().catch(() => undefined);
  await ctx.device?.stop();
  await ctx.gw?.stop();
});

const MAX_PAYLOAD = 1024 * 1024;

/** Payloads that each break one rule of PROTOCOL.md §2, shaped as each device message type. */
function malformedPayloads(device: ToolsDevice): [string, Uint8Array][] {
  const hello = { v: 1, t: 'hello', ek: device.ek, ak: device.ak, attester: 'tpm2', agent: 'x', swPcr: 14 };
  const evidence = {
    v: 1,
    t: 'evidence',
    round: new Uint8Array(16),
    body: new Uint8Array([0xa0]),
    attest: new Uint8Array([1]),
    sig: new Uint8Array([1]),
  };
  const nest = (depth: number): object => (depth === 0 ? {} : { n: nest(depth - 1) });
  const valid = encodeCbor(hello);
  return [
    ['not CBOR', new Uint8Array([0xff, 0x00, 0x13])],
    ['empty payload', new Uint8Array(0)],
    ['a CBOR array, not a map', encodeCbor([1, 'hello'])],
    ['truncated hello', valid.subarray(0, valid.length - 5)],
    ['hello with trailing bytes', new Uint8Array([...valid, 0x00])],
    ['indefinite-length map', new Uint8Array([0xbf, 0x61, 0x76, 0x01, 0xff])],
    ['tagged item', new Uint8Array([0xc1, 0x1a, 0, 0, 0, 1])],
    ['duplicate key', new Uint8Array([0xa2, 0x61, 0x76, 0x01, 0x61, 0x76, 0x01])],
    ['nested 17 deep', encodeCbor({ ...hello, x: nest(17) } as never)],
    ['version 2', encodeCbor({ ...hello, v: 2 })],
    ['unknown type', encodeCbor({ ...hello, t: 'command' })],
    ['gateway type on out (challenge)', encodeCbor({ ...hello, t: 'challenge' })],
    ['gateway type on out (result)', encodeCbor({ ...hello, t: 'result' })],
    ['gateway type on out (error)', encodeCbor({ ...hello, t: 'error' })],
    ['hello without ek', encodeCbor({ ...hello, ek: undefined })],
    ['hello with ek as text', encodeCbor({ ...hello, ek: 'ek' })],
    ['hello with empty ak', encodeCbor({ ...hello, ak: new Uint8Array(0) })],
    ['hello with attester "tpm1"', encodeCbor({ ...hello, attester: 'tpm1' })],
    ['hello with a 65-character agent', encodeCbor({ ...hello, agent: 'a'.repeat(65) })],
    ['hello with swPcr 2^64-1', encodeCbor({ ...hello, swPcr: 2n ** 64n - 1n })],
    ['hello with swPcr -1', encodeCbor({ ...hello, swPcr: -1 })],
    ['hello with invalid UTF-8', new Uint8Array([0xa1, 0x61, 0x76, 0x62, 0xc3, 0x28])],
    ['evidence without round', encodeCbor({ ...evidence, round: undefined })],
    ['evidence with a 15-byte round', encodeCbor({ ...evidence, round: new Uint8Array(15) })],
    ['evidence with an empty attest', encodeCbor({ ...evidence, attest: new Uint8Array(0) })],
    ['evidence with sig as integer', encodeCbor({ ...evidence, sig: 7 })],
    ['evidence of 1 MiB + 1 byte', encodeCbor({ ...evidence, pad: new Uint8Array(MAX_PAYLOAD) })],
  ];
}

async function publishRaw(c: Connected, id: string, payload: Uint8Array): Promise<void> {
  await c.client.publishAsync(topics.out(id), Buffer.from(payload), { qos: 0 });
}

it('each malformed payload, on an unknown id, before and after hello: error malformed', async (ctx) => {
  const { gw, device, x, xId } = ctx;
  const before = await deviceState(gw, device.id);
  for (const [what, payload] of malformedPayloads(device)) {
    await publishRaw(x, xId, payload);
    const detail = await expectError(x, 'malformed');
    assert.ok(detail.length > 0, what);
    assert.ok(x.client.connected, `${what}: the connection stays`);
  }
  assert.is(gw.gateway.fleet.get(xId), undefined, 'nothing recorded for the attacker id');
  await assertUnchanged(gw, device.id, before, 'malformed payloads');
});

it('malformed payloads between hello and evidence, while the honest device completes rounds', async (ctx) => {
  const { gw, device, a, b } = ctx;
  await device.send(b, device.hello());
  const bChallenge = expectMessage(await b.next(), 'challenge');
  const payloads = malformedPayloads(device);
  // The honest device answers a round while the flood runs on the same gateway.
  const challenge = await onDemandRound(gw, device, a);
  const honest = device.answer(a, challenge);
  for (const [, payload] of payloads) await publishRaw(b, device.id, payload);
  await honest;
  for (const [what] of payloads) assert.is(expectMessage(await b.next(), 'error').code, 'malformed', what);
  const r = expectMessage(await a.next(), 'result');
  assert.is(r.status, 'affirming', r.reasons.join());
  // B's round is still open after all that: nothing was appraised.
  assert.ok((await gw.gateway.store.round(toHex(bChallenge.round)))?.state === 'pending');
  assert.is(await gw.gateway.store.integrityCheck(), 'ok');
});

it('a seeded campaign of mutated hello and evidence over the wire: only errors and challenges, gateway serves on', async (ctx) => {
  const { gw, device, a } = ctx;
  const before = await deviceState(gw, device.id);
  const hello = encodeMessage(device.hello());
  const evidence = encodeCbor({
    v: 1,
    t: 'evidence',
    round: new Uint8Array(16),
    body: new Uint8Array([0xa0]),
    attest: new Uint8Array(40),
    sig: new Uint8Array(70),
  });
  const samples = fc.sample(
    fc.tuple(fc.constantFrom(0, 1), fc.nat(), fc.integer({ min: 1, max: 255 }), fc.boolean()),
    { seed: SEED, numRuns: 300 },
  );
  const answers: string[] = [];
  let c: Connected | undefined;
  let reconnects = 0;
  for (const [kind, at, mask, truncate] of samples) {
    // A mutated EK or AK that still decodes costs the connection (identity-mismatch, ak-unknown).
    if (!c?.client.connected) {
      await c?.close();
      c = await device.connect(gw.url, gw.ca);
      c.client.on('message', (_t, payload) => answers.push(payload.toString('hex').slice(0, 40)));
      reconnects++;
    }
    const base = kind === 0 ? hello : evidence;
    const i = at % base.length;
    const p = truncate ? base.subarray(0, i) : new Uint8Array(base);
    if (!truncate) p[i] = (p[i] ?? 0) ^ mask;
    // Fire and forget: a publish racing the gateway's close would never be acknowledged.
    c.client.publish(topics.out(device.id), Buffer.from(p), { qos: 0 });
    await new Promise((r) => setTimeout(r, 3));
  }
  await c?.close();
  // Meanwhile and afterwards the honest device is served.
  await honestRound(gw, device, a);
  assert.ok(
    answers.length > 200,
    `the gateway answered the campaign (${answers.length} answers, ${reconnects} connections)`,
  );
  const after = await deviceState(gw, device.id);
  assert.equal([after.ak, after.posture, after.clock], [before.ak, 'affirming', after.clock]);
  assert.is(before.ak, after.ak);
  assert.is(await gw.gateway.store.integrityCheck(), 'ok');
  assert.equal(ctx.failures.caught, []);
});

it.run();
