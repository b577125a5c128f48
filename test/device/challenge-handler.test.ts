import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ChallengeHandler } from '../../device/challenge-handler.ts';
import { replaySoftwareLog, SoftwareLog } from '../../device/software-log.ts';
import { BootLog } from '../../firmware-shims/logs/boot-log.ts';
import { ImaLog } from '../../firmware-shims/logs/ima.ts';
import { bindingDigest } from '../../shared/protocol/binding.ts';
import { decodeClaims } from '../../shared/protocol/claims.ts';
import type { Challenge, Evidence } from '../../shared/protocol/messages.ts';
import { parseQuoteAttest } from '../../shared/tpm/attest.ts';
import { makeCredential } from '../../shared/tpm/credential.ts';
import { parsePublic } from '../../shared/tpm/public.ts';
import { parseSignature, verifySignature } from '../../shared/tpm/signature.ts';
import { freshChallenge } from '../support/challenge.ts';
import { removeDir, tempDir } from '../support/tmp.ts';
import { sha256 } from './hash.ts';
import { captureLogger, type ProvisionedTpm, provisionedTpm } from './support.ts';

// The attester half against the verifier half: evidence the handler makes from a real (software)
// TPM must pass every check PROTOCOL.md §5 makes of a quote, computed here from shared/ alone.

const SW_PCR = 14;
const exporterValue = new Uint8Array(32).fill(0x5a);
const exporter = () => exporterValue;

const ctx: {
  tpm?: ProvisionedTpm;
  dir?: string;
  handler?: ChallengeHandler;
  lines?: Record<string, unknown>[];
} = {};
const test = suite('challenge handler', ctx);

test.before(async () => {
  ctx.tpm = await provisionedTpm();
  ctx.dir = tempDir('handler');
  const ima = join(ctx.dir, 'ima.txt');
  writeFileSync(ima, '10 aa ima-ng sha256:00 boot_aggregate\n10 bb ima-ng sha256:01 /usr/bin/node\n');
  const access = ctx.tpm.access;
  const { log } = await access.run((t) => SoftwareLog.open(ctx.dir!, SW_PCR, t));
  await access.run((t) =>
    log.record(t, { name: 'vigil-agent', version: '1.0.0', digest: sha256('manifest 1') }),
  );
  await access.run((t) => log.record(t, { name: 'app', version: '2.0.0', digest: sha256('manifest app') }));
  const { logger, lines } = captureLogger();
  ctx.lines = lines;
  ctx.handler = new ChallengeHandler({
    hello: {
      t: 'hello',
      ek: ctx.tpm.keys.ek.publicArea,
      ak: ctx.tpm.keys.ak.publicArea,
      attester: 'tpm2',
      agent: 'test',
      swPcr: SW_PCR,
    },
    tpm: access,
    akHandle: ctx.tpm.keys.ak.handle,
    ek: 'ecc',
    swLog: log,
    software: () => ({ name: 'vigil-agent', version: '1.0.0', digest: sha256('manifest 1') }),
    ima: new ImaLog(ima),
    boot: new BootLog(join(ctx.dir, 'no-such-boot-log')),
    logger,
  });
});

test.after(async () => {
  await ctx.tpm?.stop();
  if (ctx.dir) removeDir(ctx.dir);
});

function challenge(extra: Partial<Challenge> = {}): Challenge {
  return freshChallenge({
    reason: 'periodic',
    pcrs: [0, 7, SW_PCR],
    logs: { sw: 0, ima: 0, boot: 0 },
    deadline: 30_000,
    ...extra,
  });
}

/** The checks of PROTOCOL.md §5 that concern the quote, as a verifier makes them. */
function verify(c: Challenge, e: Evidence) {
  const ak = parsePublic(ctx.tpm!.keys.ak.publicArea);
  assert.ok(verifySignature(ak, e.attest, parseSignature(e.sig)), 'signature verifies with the AK');
  const attest = parseQuoteAttest(e.attest);
  assert.equal(attest.extraData, bindingDigest(exporterValue, e.body), 'extraData binds body and channel');
  assert.equal(attest.pcrSelect, [{ hash: 'sha256', pcrs: [...c.pcrs] }], 'quoted selection = requested');
  const claims = decodeClaims(e.body);
  assert.equal(claims.nonce, c.nonce);
  assert.equal([...claims.pcrs.keys()], [...c.pcrs], 'exactly the requested PCRs are claimed');
  const concatenated = Buffer.concat(c.pcrs.map((p) => claims.pcrs.get(p)!));
  assert.equal(attest.pcrDigest, sha256(concatenated), 'pcrDigest = SHA-256 of the claimed values');
  assert.equal(e.round, c.round);
  return claims;
}

test('evidence verifies: signature, binding, PCR digest, and the sw log replays to the quoted swPcr', async () => {
  const c = challenge();
  const e = await ctx.handler!.handle(c, exporter);
  const claims = verify(c, e);
  const sw = claims.logs.sw!;
  assert.is(sw.from, 0);
  assert.is(sw.more, false);
  assert.equal(
    sw.entries.map((x) => [x.name, x.version]),
    [
      ['vigil-agent', '1.0.0'],
      ['app', '2.0.0'],
    ],
  );
  assert.equal(replaySoftwareLog(sw.entries), claims.pcrs.get(SW_PCR), 'sw log replays to the quoted PCR');
  assert.equal(claims.sw, { name: 'vigil-agent', version: '1.0.0' });
  assert.equal(claims.logs.ima?.entries.length, 2);
  assert.is(claims.logs.boot, undefined, 'an absent boot log is left out, not faked');
  assert.is(claims.activation, undefined);
});

test('logs are sent from the offsets asked; an offset past the end is answered from 0', async () => {
  const c = challenge({ logs: { sw: 1, ima: 1 } });
  const claims = verify(c, await ctx.handler!.handle(c, exporter));
  assert.is(claims.logs.sw?.from, 1);
  assert.equal(
    claims.logs.sw?.entries.map((x) => x.name),
    ['app'],
  );
  assert.is(claims.logs.ima?.from, 1);
  assert.is(claims.logs.ima?.entries.length, 1);
  const past = challenge({ logs: { sw: 9, ima: 9 } });
  const replay = verify(past, await ctx.handler!.handle(past, exporter));
  assert.is(replay.logs.sw?.from, 0);
  assert.is(replay.logs.sw?.entries.length, 2);
  assert.is(replay.logs.ima?.from, 0);
  assert.is(replay.logs.ima?.entries.length, 2);
  const none = challenge({ logs: {} });
  assert.equal(verify(none, await ctx.handler!.handle(none, exporter)).logs, {});
});

test('with activate: the secret from MakeCredential for the AK name comes back as body.activation', async () => {
  const secret = randomBytes(32);
  const ek = parsePublic(ctx.tpm!.keys.ek.publicArea);
  const made = makeCredential(ek, ctx.tpm!.keys.ak.name, secret);
  const c = challenge({ reason: 'onboard', activate: made });
  const claims = verify(c, await ctx.handler!.handle(c, exporter));
  assert.equal(claims.activation, new Uint8Array(secret));
});

test('a credential made for another key name is not recovered: evidence without activation', async () => {
  const ek = parsePublic(ctx.tpm!.keys.ek.publicArea);
  const wrongName = new Uint8Array(ctx.tpm!.keys.ak.name);
  wrongName[5]! ^= 0xff;
  const c = challenge({ reason: 'onboard', activate: makeCredential(ek, wrongName, randomBytes(32)) });
  const claims = verify(c, await ctx.handler!.handle(c, exporter));
  assert.is(claims.activation, undefined);
  assert.ok(ctx.lines!.some((l) => String(l.msg).includes('ActivateCredential failed')));
});

test('no transient object is left in the TPM after a round with activation', async () => {
  const { TPM_HT } = await import('../../shared/tpm/constants.ts');
  const transient = await ctx.tpm!.access.run((t) => t.handles(TPM_HT.TRANSIENT));
  assert.equal(transient, []);
});

test('a payload that is not a well-formed challenge throws ProtocolError before the TPM is used', async () => {
  const { encodeMessage } = await import('../../shared/protocol/envelope.ts');
  const { ProtocolError } = await import('../../shared/protocol/errors.ts');
  const good = encodeMessage(challenge());
  const bad: Uint8Array[] = [
    good.subarray(0, good.length - 1),
    new Uint8Array([...good, 0]),
    encodeMessage({
      t: 'result',
      round: new Uint8Array(16),
      status: 'none',
      reasons: [],
      expires: 0,
      ear: Uint8Array.of(0x84),
    }),
  ];
  let produced = 0;
  for (const payload of bad) {
    try {
      await ctx.handler!.handlePayload(payload, exporter);
      produced++;
    } catch (e) {
      assert.instance(e, ProtocolError);
      assert.is((e as InstanceType<typeof ProtocolError>).code, 'malformed');
    }
  }
  assert.is(produced, 0, 'no evidence');
  assert.ok((await ctx.handler!.handlePayload(good, exporter)).t === 'evidence');
});

test.run();
