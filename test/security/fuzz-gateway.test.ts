import { createHash, generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DeviceConnection } from '../../gateway/connections/device-connection.ts';
import { expectedAkQualifiedName } from '../../gateway/verifier/appraise.ts';
import { encodeCbor } from '../../shared/cbor/encode.ts';
import { systemClock } from '../../shared/clock.ts';
import {
  bindingDigest,
  channelExporter,
  decodeGatewayMessage,
  deviceIdentity,
  type Evidence,
  encodeClaims,
  encodeMessage,
  type GatewayMessage,
  type Hello,
} from '../../shared/protocol/index.ts';
import { type EccPublic, ekTemplate, marshalPublic, objectName, toHex } from '../../shared/tpm/index.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import { collectProcessFailures, type ProcessFailures } from '../support/process-failures.ts';
import { type TlsPair, withTlsPair } from '../support/tls-pair.ts';
import { buildAttest, softAk, softSign } from './soft-quote.ts';

// A seeded fuzz campaign through the gateway's own decoding and appraisal, in process for speed:
// the router the broker hook hands every payload on `out` to (gateway/connections/router.ts),
// on a real TLS connection's server end so the exporter is real. Evidence is built valid (signed
// by an enrolled software AK, bound to the connection) and then mutated, so the cases reach every
// check of the appraisal, not only the decoder.
//
// Invariants: nothing throws out of the handler; no unhandled rejection or uncaught exception;
// every answer is an `error` or a `result`; a result is affirming only for evidence identical to
// the valid one; the enrolled AK never changes; the store stays sound.

const SEED = 0x5eed_0008;
const RUNS = Number(process.env.VIGIL_FUZZ_RUNS ?? 2400);
const SW_PCR = 14;

interface Ctx {
  gw: TestGateway;
  pair: TlsPair;
  failures: ProcessFailures;
}
const it = suite<Ctx>('gateway fuzz (in process)');

it.before(async (ctx) => {
  ctx.failures = collectProcessFailures({ uncaughtExceptions: true });
  const digest = toHex(createHash('sha256').update('fw').digest());
  ctx.gw = await startTestGateway({
    policy: {
      admission: { mode: 'open' },
      referenceValues: { software: [{ name: 'fw', version: '1', digest }] },
      rounds: { periodicMs: 600_000, deadlineMs: 60_000 },
    },
    // Messages are dispatched here and their answers read at once: the appraisal's signature
    // checked on this thread (the same code a pool worker runs), not a turn later.
    cryptoThreads: 0,
  });
  ctx.pair = await withTlsPair();
});

it.after(async (ctx) => {
  ctx.failures?.stop();
  ctx.pair?.close();
  await ctx.gw?.stop();
});

/** A connection whose link decodes and keeps what the gateway sends it; the exporter is real. */
function fakeConnection(gw: TestGateway, pair: TlsPair, clientId: string, deviceId: string) {
  const sent: GatewayMessage[] = [];
  const conn = new DeviceConnection(
    {
      clientId,
      remoteAddress: '127.0.0.1',
      exporter: (nonce) => channelExporter(pair.server, nonce),
      send: (payload) => sent.push(decodeGatewayMessage(payload)),
      disconnect() {},
    },
    deviceId,
    systemClock,
    gw.gateway.attestation.onDeadline,
  );
  return { conn, sent };
}

/** A software device: a real P-256 point as EK (so MakeCredential works), a software AK. */
function softDevice() {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  const c = (b: string | undefined) => new Uint8Array(Buffer.from(b ?? '', 'base64url'));
  const ek = marshalPublic({ ...(ekTemplate('ecc') as EccPublic), unique: { x: c(jwk.x), y: c(jwk.y) } });
  const ak = softAk();
  const hello: Hello = { t: 'hello', ek, ak: ak.publicArea, attester: 'tpm2', agent: 'fuzz', swPcr: SW_PCR };
  return { id: deviceIdentity(ek).deviceId, ek, ak, hello };
}

const mutation = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), mask: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant('insert' as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
  }),
  fc.record({ kind: fc.constant('none' as const) }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;

function mutate(bytes: Uint8Array, m: Mutation): Uint8Array {
  if (m.kind === 'none' || bytes.length === 0) return bytes;
  const at = m.at % bytes.length;
  if (m.kind === 'flip') {
    const out = new Uint8Array(bytes);
    out[at] = (out[at] ?? 0) ^ m.mask;
    return out;
  }
  if (m.kind === 'truncate') return bytes.subarray(0, at);
  return new Uint8Array([...bytes.subarray(0, at), ...m.bytes, ...bytes.subarray(at)]);
}

const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0;

it('hello: random and mutated payloads on fresh connections', async (ctx) => {
  const { gw, pair } = ctx;
  const dev = softDevice();
  const valid = encodeMessage(dev.hello);
  const payload = fc.oneof(
    fc.uint8Array({ maxLength: 300 }),
    mutation.map((m) => mutate(valid, m)),
    fc
      .dictionary(
        fc.constantFrom('v', 't', 'ek', 'ak', 'attester', 'agent', 'swPcr', 'x'),
        fc.oneof(
          fc.integer(),
          fc.string(),
          fc.uint8Array({ maxLength: 80 }),
          fc.constant(dev.ek),
          fc.constant(dev.ak.publicArea),
        ),
      )
      .map((o) => encodeCbor({ v: 1, t: 'hello', ...o })),
  );
  fc.assert(
    fc.property(payload, (bytes) => {
      const { conn, sent } = fakeConnection(gw, pair, `${dev.id}.f`, dev.id);
      gw.gateway.router.dispatch(conn, bytes);
      conn.close();
      return sent.every((m) => m.t === 'error' || m.t === 'challenge');
    }),
    { seed: SEED, numRuns: Math.ceil(RUNS / 3) },
  );
  assert.equal(ctx.failures.caught, []);
});

it('evidence: valid, then mutated at every layer; appraised, never crashing, never wrongly affirmed', async (ctx) => {
  const { gw, pair } = ctx;
  const dev = softDevice();
  // Enrol the software AK as if its activation had passed, so rounds carry no `activate`.
  {
    const { conn } = fakeConnection(gw, pair, `${dev.id}.enrol`, dev.id);
    gw.gateway.router.dispatch(conn, encodeMessage(dev.hello));
    conn.close();
    const d = gw.gateway.fleet.get(dev.id)!;
    gw.gateway.fleet.save({
      ...d,
      ak: { publicArea: dev.ak.publicArea, name: objectName(dev.ak.publicArea), enrolledAt: 1 },
    });
  }
  const akName = toHex(gw.gateway.fleet.get(dev.id)!.ak!.name);
  const { conn: session, sent } = fakeConnection(gw, pair, `${dev.id}.fuzz`, dev.id);
  gw.gateway.router.dispatch(session, encodeMessage(dev.hello));
  const swDigest = new Uint8Array(createHash('sha256').update('fw').digest());
  const pcr = new Uint8Array(createHash('sha256').update(new Uint8Array(32)).update(swDigest).digest());
  let clock = 1_000n;

  /** Valid evidence for the round in flight, answered on the client end of the same connection. */
  const validEvidence = (): Evidence => {
    let last: GatewayMessage | undefined = [...sent].reverse().find((m) => m.t === 'challenge');
    if (last?.t !== 'challenge' || session.rounds.lookup(toHex(last.round)).kind !== 'open') {
      gw.gateway.attestation.start(session, 'on-demand');
      last = sent.at(-1);
    }
    if (last?.t !== 'challenge') throw new Error('no round in flight');
    const challenge = last;
    const from = challenge.logs.sw ?? 0;
    const body = encodeClaims({
      nonce: challenge.nonce,
      pcrs: new Map(challenge.pcrs.map((i) => [i, i === SW_PCR ? pcr : new Uint8Array(32)])),
      sw: { name: 'fw', version: '1' },
      logs: {
        sw: {
          from,
          entries: from === 0 ? [{ digest: swDigest, name: 'fw', version: '1' }] : [],
          more: false,
        },
      },
    });
    clock += 1000n;
    const attest = buildAttest({
      qualifiedSigner: expectedAkQualifiedName(objectName(dev.ek), dev.ak.publicArea),
      extraData: bindingDigest(channelExporter(pair.client, challenge.nonce), body),
      clock,
      pcrs: challenge.pcrs,
      pcrValues: challenge.pcrs.map((i) => (i === SW_PCR ? pcr : new Uint8Array(32))),
    });
    return { t: 'evidence', round: challenge.round, body, attest, sig: softSign(dev.ak, attest) };
  };

  const field = fc.constantFrom('round', 'body', 'attest', 'sig', 'envelope', 'none');
  let affirmed = 0;
  fc.assert(
    fc.property(field, mutation, (where, m) => {
      const ev = validEvidence();
      const altered: Evidence =
        where === 'round' || where === 'body' || where === 'attest' || where === 'sig'
          ? { ...ev, [where]: mutate(ev[where], m) }
          : ev;
      const payload = where === 'envelope' ? mutate(encodeMessage(ev), m) : encodeMessage(altered);
      const before = sent.length;
      gw.gateway.router.dispatch(session, payload);
      const answers = sent.slice(before);
      if (answers.length !== 1) return false;
      const answer = answers[0]!;
      if (answer.t === 'result' && answer.status === 'affirming') {
        affirmed++;
        const unchanged =
          same(altered.round, ev.round) &&
          same(altered.body, ev.body) &&
          same(altered.attest, ev.attest) &&
          same(altered.sig, ev.sig);
        if (!unchanged && where !== 'envelope') return false;
      }
      if (answer.t === 'error' && answer.code === 'malformed' && session.rounds.size > 0) {
        // The round stays open after a malformed message: settle it so the next case has a fresh one.
        validEvidence();
        gw.gateway.router.dispatch(session, encodeMessage({ ...validEvidence(), sig: new Uint8Array([0]) }));
      }
      return answer.t === 'error' || answer.t === 'result';
    }),
    { seed: SEED, numRuns: RUNS },
  );
  session.close();
  assert.ok(affirmed > RUNS / 20, `valid evidence was affirmed (${affirmed} times)`);
  assert.is(toHex(gw.gateway.fleet.get(dev.id)!.ak!.name), akName, 'the enrolled AK never changed');
  await gw.gateway.store.flush();
  assert.is(await gw.gateway.store.integrityCheck(), 'ok');
  await new Promise((r) => setImmediate(r));
  assert.equal(ctx.failures.caught, [], 'no unhandled rejection or uncaught exception');
});

it.run();
