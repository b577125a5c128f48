import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type Agent, startAgent } from '../../device/agent.ts';
import { initAgent } from '../../device/init.ts';
import { replaySoftwareLog } from '../../device/software-log.ts';
import { encodeCbor } from '../../shared/cbor/encode.ts';
import type { Encodable } from '../../shared/cbor/value.ts';
import { bindingDigest, channelExporter } from '../../shared/protocol/binding.ts';
import { decodeClaims } from '../../shared/protocol/claims.ts';
import { encodeMessage } from '../../shared/protocol/envelope.ts';
import { deviceIdentity } from '../../shared/protocol/identity.ts';
import type { Challenge, Evidence, Hello } from '../../shared/protocol/messages.ts';
import { parseQuoteAttest } from '../../shared/tpm/attest.ts';
import { freshChallenge } from '../support/challenge.ts';
import { type Swtpm, startSwtpm } from '../support/swtpm.ts';
import { removeDir, tempDir } from '../support/tmp.ts';
import { captureLogger } from './support.ts';
import { startTestBroker, type TestBroker } from './test-broker.ts';

// The agent in-process against a real TLS 1.3 MQTT broker and a real (software) TPM: hello after
// every CONNECT, challenges answered on the connection they came on (the broker's end of that
// connection recomputes the binding), malformed challenges refused without quoting and without
// losing the connection, and the software log across agent restarts and a TPM reset.

const SOFTWARE = {
  root: join(import.meta.dirname, 'fixtures/software'),
  name: 'fixture-app',
  version: '1.0.0',
};
const FAST_RECONNECT = { baseMs: 20, capMs: 200 };

interface Ctx {
  swtpm?: Swtpm;
  broker?: TestBroker;
  dir?: string;
  agent?: Agent;
  lines?: Record<string, unknown>[];
}
const ctx: Ctx = {};
const test = suite<Ctx>('agent', ctx);

test.before(async () => {
  ctx.swtpm = await startSwtpm();
  ctx.broker = await startTestBroker();
  ctx.dir = tempDir('agent');
  const ca = join(ctx.dir, 'gateway-ca.pem');
  writeFileSync(ca, ctx.broker.ca);
  await initAgent({ dir: ctx.dir, gateway: ctx.broker.url, ca, tpm: ctx.swtpm.tcti, ek: 'ecc' });
});

test.after(async () => {
  await ctx.agent?.stop();
  await ctx.broker?.close();
  await ctx.swtpm?.stop();
  if (ctx.dir) removeDir(ctx.dir);
});

/** Starts the agent and waits for its hello: a challenge sent before it subscribed would be lost. */
async function start(software: typeof SOFTWARE = SOFTWARE): Promise<Agent> {
  await ctx.agent?.stop();
  const { logger, lines } = captureLogger();
  ctx.lines = lines;
  const after = ctx.broker!.received.length;
  ctx.agent = await startAgent({ dir: ctx.dir!, logger, software, reconnect: FAST_RECONNECT });
  await ctx.broker!.next(isHello(ctx.agent.deviceId), after);
  return ctx.agent;
}

const isHello = (id: string) => (r: { message: { t: string }; clientId: string }) =>
  r.message.t === 'hello' && r.clientId.startsWith(`${id}.`);

function challenge(extra: Partial<Challenge> = {}): Challenge {
  return freshChallenge({ reason: 'periodic', pcrs: [0, 14], logs: { sw: 0 }, deadline: 30_000, ...extra });
}

/** Sends `c` and returns the evidence, checked against the broker's end of the connection. */
async function roundTrip(agent: Agent, c: Challenge): Promise<{ evidence: Evidence; conn: unknown }> {
  const b = ctx.broker!;
  const after = b.received.length;
  await b.send(agent.deviceId, encodeMessage(c));
  const got = await b.next(
    (r) => r.message.t === 'evidence' && Buffer.compare(r.message.round, c.round) === 0,
    after,
  );
  const evidence = got.message as Evidence;
  const attest = parseQuoteAttest(evidence.attest);
  const exporter = channelExporter(got.conn, c.nonce);
  assert.equal(attest.extraData, bindingDigest(exporter, evidence.body), 'bound to this very connection');
  return { evidence, conn: got.conn };
}

test('hello after CONNECT names the TPM; a challenge is answered with evidence bound to the connection', async () => {
  const agent = await start();
  const hello = ctx.broker!.received.find(isHello(agent.deviceId))!.message as Hello;
  assert.is(
    deviceIdentity(hello.ek).deviceId,
    agent.deviceId,
    'clientId = device id (plus a suffix) = hash of hello.ek',
  );
  assert.is(hello.attester, 'tpm2');
  assert.is(hello.swPcr, 14);
  assert.match(hello.agent, /^vigil-agent\//);
  const socket = agent.socket();
  assert.ok(socket, 'connected');
  assert.is(socket!.getProtocol(), 'TLSv1.3');
  assert.is(socket!.isSessionReused(), false);

  const c = challenge({ reason: 'onboard' });
  const { evidence } = await roundTrip(agent, c);
  const claims = decodeClaims(evidence.body);
  assert.equal(claims.sw, { name: 'fixture-app', version: '1.0.0' });
  assert.equal(replaySoftwareLog(claims.logs.sw!.entries), claims.pcrs.get(14));

  const expires = Date.now() + 60_000;
  const result = encodeMessage({
    t: 'result',
    round: c.round,
    status: 'affirming',
    reasons: [],
    expires,
    ear: Uint8Array.of(0x84, 0x40, 0xa0, 0x40, 0x40),
  });
  const seen = new Promise<void>((resolve) => agent.once('result', () => resolve()));
  await ctx.broker!.send(agent.deviceId, result);
  await seen;
  assert.is(agent.state.lastResult?.status, 'affirming');
  assert.is(agent.state.lastResult?.expires, expires);
  assert.is(agent.state.connection.status, 'connected');
  assert.is(agent.state.lastRound?.outcome, 'answered');
});

// A well-formed challenge as a plain CBOR map, so each field can be broken in turn.
function rawChallenge(): Record<string, Encodable> {
  return {
    v: 1,
    t: 'challenge',
    round: new Uint8Array(16).fill(1),
    nonce: new Uint8Array(32).fill(2),
    reason: 'periodic',
    pcrs: [0, 14],
    logs: { sw: 0 },
    deadline: 30_000,
  };
}

const without = (key: string) => {
  const m = rawChallenge();
  delete m[key];
  return encodeCbor(m);
};
const withField = (key: string, value: Encodable) => encodeCbor({ ...rawChallenge(), [key]: value });

const MALFORMED: [string, Uint8Array][] = [
  ['empty payload', new Uint8Array(0)],
  ['not CBOR', new TextEncoder().encode('{"t":"challenge"}')],
  ['trailing bytes', new Uint8Array([...encodeCbor(rawChallenge()), 0])],
  ['not a map', encodeCbor([1, 'challenge'])],
  ['version 2', withField('v', 2)],
  ['unknown type', withField('t', 'challenge2')],
  ['device-to-gateway type', withField('t', 'evidence')],
  ...['round', 'nonce', 'reason', 'pcrs', 'logs', 'deadline'].map((k): [string, Uint8Array] => [
    `no ${k}`,
    without(k),
  ]),
  ['round of 15 bytes', withField('round', new Uint8Array(15))],
  ['round as text', withField('round', 'round')],
  ['nonce of 31 bytes', withField('nonce', new Uint8Array(31))],
  ['nonce of 33 bytes', withField('nonce', new Uint8Array(33))],
  ['unknown reason', withField('reason', 'because')],
  ['PCRs descending', withField('pcrs', [14, 0])],
  ['PCR 24', withField('pcrs', [24])],
  ['no PCRs', withField('pcrs', [])],
  ['PCR as text', withField('pcrs', ['14'])],
  ['logs as array', withField('logs', ['sw'])],
  ['sw offset negative', withField('logs', { sw: -1 })],
  ['activate without secret', withField('activate', { blob: new Uint8Array(4) })],
  ['activate blob as text', withField('activate', { blob: 'x', secret: new Uint8Array(4) })],
  ['deadline 0', withField('deadline', 0)],
  ['deadline of a day', withField('deadline', 86_400_000)],
  ['deadline as text', withField('deadline', '30000')],
];

test('malformed challenges, every field wrong in turn: one clear log line each, nothing quoted, still connected', async () => {
  const agent = ctx.agent!;
  const b = ctx.broker!;
  const socket = agent.socket();
  const connections = b.connections.length;
  const evidenceBefore = b.received.filter((r) => r.message.t === 'evidence').length;
  const refused: string[] = [];
  const onRefused = (e: Error) => refused.push(e.message);
  agent.on('refused', onRefused);
  for (const [, payload] of MALFORMED) await b.send(agent.deviceId, payload);
  // A valid challenge after them: answered on the same connection, so the bad ones were handled
  // (in order) and did not cost the connection.
  await roundTrip(agent, challenge());
  agent.off('refused', onRefused);
  assert.is(refused.length, MALFORMED.length, 'each malformed payload refused');
  for (const m of refused) assert.match(m, /^malformed: /);
  const lines = ctx.lines!.filter((l) => String(l.msg).startsWith('refused a message from the gateway'));
  assert.is(lines.length, MALFORMED.length, 'one log line per refused payload');
  assert.ok(lines.every((l) => l.code === 'malformed' && typeof l.detail === 'string' && l.level === 40));
  assert.is(
    b.received.filter((r) => r.message.t === 'evidence').length,
    evidenceBefore + 1,
    'evidence only for the valid challenge',
  );
  assert.is(agent.socket(), socket, 'same TLS socket');
  assert.is(b.connections.length, connections, 'no reconnect');
  assert.is(agent.state.lastRound?.outcome, 'answered');
});

test('a gateway error is logged and kept in the state', async () => {
  const agent = ctx.agent!;
  const seen = new Promise<void>((resolve) => agent.once('gateway-error', () => resolve()));
  await ctx.broker!.send(
    agent.deviceId,
    encodeMessage({
      t: 'error',
      code: 'binding-mismatch',
      detail: 'extraData differs',
      round: new Uint8Array(16),
    }),
  );
  await seen;
  assert.is(agent.state.lastError?.code, 'binding-mismatch');
  assert.ok(
    ctx.lines!.some((l) => l.msg === 'the gateway reported an error' && l.code === 'binding-mismatch'),
  );
  assert.is(agent.state.connection.status, 'connected');
});

test('after the broker drops the connection: reconnects, full handshake, hello again', async () => {
  const agent = ctx.agent!;
  const b = ctx.broker!;
  const old = agent.socket();
  const after = b.received.length;
  b.dropAll();
  await b.next(isHello(agent.deviceId), after);
  const socket = agent.socket();
  assert.ok(socket && socket !== old, 'a new connection');
  assert.is(socket!.isSessionReused(), false, 'no TLS session resumption');
  const { conn } = await roundTrip(agent, challenge());
  assert.is(conn, b.connections[b.connections.length - 1], 'answered on the new connection');
});

test('agent restart without TPM reset continues the software log; a TPM reset starts it at offset 0', async () => {
  let agent = await start();
  const first = decodeClaims((await roundTrip(agent, challenge())).evidence.body).logs.sw!;
  assert.is(first.entries.length, 1);

  // Restart with the same software: the log continues, nothing new is extended.
  agent = await start();
  assert.ok(ctx.lines!.some((l) => l.msg === 'software log opened' && l.outcome === 'continued'));
  let claims = decodeClaims((await roundTrip(agent, challenge())).evidence.body);
  assert.is(claims.logs.sw!.entries.length, 1);
  assert.equal(replaySoftwareLog(claims.logs.sw!.entries), claims.pcrs.get(14));

  // Restart with new software: one more entry, and the log names it as what runs now.
  agent = await start({ ...SOFTWARE, version: '1.1.0' });
  claims = decodeClaims((await roundTrip(agent, challenge({ logs: { sw: 1 } }))).evidence.body);
  assert.is(claims.logs.sw!.from, 1);
  assert.equal(
    claims.logs.sw!.entries.map((e) => e.version),
    ['1.1.0'],
  );

  // TPM reset: the PCR is zero again, the log starts over; a gateway's old offset (2) is past the
  // end and is answered from 0.
  await agent.stop();
  await ctx.swtpm!.restart();
  agent = await start();
  assert.ok(ctx.lines!.some((l) => l.msg === 'software log opened' && l.outcome === 'reset'));
  claims = decodeClaims((await roundTrip(agent, challenge({ logs: { sw: 2 } }))).evidence.body);
  assert.is(claims.logs.sw!.from, 0);
  assert.is(claims.logs.sw!.entries.length, 1);
  assert.equal(replaySoftwareLog(claims.logs.sw!.entries), claims.pcrs.get(14));
});

test('a TPM reset under the running agent: the log starts over and is sent from 0', async () => {
  const agent = await start();
  const before = decodeClaims((await roundTrip(agent, challenge())).evidence.body);
  assert.is(before.logs.sw!.entries.length, 1);
  await ctx.swtpm!.restart();
  // The gateway still holds offset 1 from before the reset.
  const claims = decodeClaims((await roundTrip(agent, challenge({ logs: { sw: 1 } }))).evidence.body);
  assert.is(claims.logs.sw!.from, 0);
  assert.is(claims.logs.sw!.entries.length, 1);
  assert.equal(replaySoftwareLog(claims.logs.sw!.entries), claims.pcrs.get(14));
  assert.ok(ctx.lines!.some((l) => String(l.msg).startsWith('the TPM was reset under the running agent')));
  // The next round continues from the new log as usual.
  const next = decodeClaims((await roundTrip(agent, challenge({ logs: { sw: 1 } }))).evidence.body);
  assert.equal([next.logs.sw!.from, next.logs.sw!.entries.length], [1, 0]);
});

test.run();
