import { randomBytes } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  type Challenge,
  channelExporter,
  deviceIdentity,
  type Evidence,
  encodeMessage,
  topics,
} from '../../shared/protocol/index.ts';
import { parseQuoteAttest, parseSignature, TpmFormatError, toHex } from '../../shared/tpm/index.ts';
import type { TestGateway } from '../support/gateway.ts';
import { eventually } from '../support/operator.ts';
import { type Connected, digestOf, type ToolsDevice } from '../support/tools-device.ts';
import { softAk } from './soft-quote.ts';
import {
  assertUnchanged,
  type DeviceState,
  deviceState,
  expectError,
  expectMessage,
  expectRefusal,
  flip,
} from './support.ts';
import {
  attestedConnection,
  createDevice,
  honestRound,
  onDemandRound,
  SOFTWARE,
  startOpenGateway,
} from './testbed.ts';

// Forged and substituted structures over the wire (PROTOCOL.md §5, in its order): a real
// tpm2-tools quote, altered region by region, and claims the TPM really signed but that do not
// match what was asked. Structure checks behind a valid signature are in forgery-soft.test.ts.

interface Ctx {
  gw: TestGateway;
  device: ToolsDevice;
  /** The device's attested connection. */
  a: Connected;
  /** An attacker's connection under the device's id: its failures must not touch the device. */
  b: Connected;
  bFirst?: Challenge;
  others: Connected[];
}
const it = suite<Ctx>('forged and substituted evidence');

it.before(async (ctx) => {
  ctx.others = [];
  ctx.gw = await startOpenGateway({ deadlineMs: 5000 });
  ctx.device = await createDevice();
  ctx.a = await attestedConnection(ctx.gw, ctx.device, { suffix: 'a' });
  ctx.b = await ctx.device.connect(ctx.gw.url, ctx.gw.ca, { suffix: 'b' });
  await ctx.device.send(ctx.b, ctx.device.hello());
  ctx.bFirst = expectMessage(await ctx.b.next(), 'challenge');
});

it.after(async (ctx) => {
  for (const c of [ctx.a, ctx.b, ...(ctx.others ?? [])]) await c?.close().catch(() => undefined);
  await ctx.device?.stop();
  await ctx.gw?.stop();
});

/** A fresh round on the attacker's connection B. */
async function roundOnB(ctx: Ctx): Promise<Challenge> {
  if (ctx.bFirst) {
    const c = ctx.bFirst;
    delete ctx.bFirst;
    return c;
  }
  return onDemandRound(ctx.gw, ctx.device, ctx.b);
}

/** Honest evidence on B, altered by `alter` before it is sent. */
async function forgedOnB(ctx: Ctx, alter: (ev: Evidence) => Evidence): Promise<Evidence> {
  const c = await roundOnB(ctx);
  const ev = await ctx.device.evidence(c, channelExporter(ctx.b.socket, c.nonce));
  await ctx.device.send(ctx.b, alter(ev));
  return ev;
}

/** Byte offsets of each field of a TPMS_ATTEST carrying a quote. */
function attestRegions(attest: Uint8Array): Record<string, number> {
  const q = parseQuoteAttest(attest);
  const qs = 6;
  const extra = qs + 2 + q.qualifiedSigner.length;
  const clock = extra + 2 + q.extraData.length;
  const pcrSelect = clock + 8 + 4 + 4 + 1 + 8;
  return {
    magic: 0,
    type: 4,
    'qualifiedSigner.size': qs,
    qualifiedSigner: qs + 2,
    'extraData.size': extra,
    extraData: extra + 2,
    'clockInfo.clock': clock,
    'clockInfo.resetCount': clock + 8,
    'clockInfo.restartCount': clock + 12,
    'clockInfo.safe': clock + 16,
    firmwareVersion: clock + 17,
    'pcrSelect.count': pcrSelect,
    'pcrSelect.hash': pcrSelect + 4 + 1,
    'pcrSelect.bitmap': pcrSelect + 4 + 2 + 1,
    'pcrDigest.size': attest.length - 34,
    pcrDigest: attest.length - 32,
    'pcrDigest.last': attest.length - 1,
  };
}

function sigRegions(sig: Uint8Array): Record<string, number> {
  const s = parseSignature(sig);
  if (s.type !== 'ecdsa') throw new Error('expected an ECDSA signature');
  const sAt = 6 + s.r.length;
  return {
    sigAlg: 0,
    hash: 2,
    'signatureR.size': 4,
    signatureR: 6,
    'signatureR.last': sAt - 1,
    'signatureS.size': sAt,
    signatureS: sAt + 2,
    'signatureS.last': sig.length - 1,
  };
}

it('each byte region of attest mutated: signature-invalid, nothing changes', async (ctx) => {
  const { gw, device, b } = ctx;
  const before = await deviceState(gw, device.id);
  // Every quote of this device has the same layout, so the regions of one apply to all.
  const probe = await device.evidence(await roundOnB(ctx), new Uint8Array(32));
  await device.send(b, probe);
  await expectRefusal(b, 'binding-mismatch'); // bound to no channel at all
  const regions = Object.entries(attestRegions(probe.attest));
  for (const [region, at] of regions) {
    await forgedOnB(ctx, (ev) => ({ ...ev, attest: flip(ev.attest, at) }));
    const r = expectMessage(await b.next(), 'result');
    assert.equal(r.reasons, ['signature-invalid'], `attest.${region}`);
  }
  // Truncated and extended attest: also caught by the signature, which covers every byte.
  await forgedOnB(ctx, (ev) => ({ ...ev, attest: ev.attest.subarray(0, ev.attest.length - 1) }));
  await expectRefusal(b, 'signature-invalid');
  await forgedOnB(ctx, (ev) => ({ ...ev, attest: new Uint8Array([...ev.attest, 0]) }));
  await expectRefusal(b, 'signature-invalid');
  await assertUnchanged(gw, device.id, before, 'forged attest');
});

it('each byte region of sig mutated: signature-invalid', async (ctx) => {
  const { gw, device, b } = ctx;
  const before = await deviceState(gw, device.id);
  const probe = await roundOnB(ctx);
  const sample = await device.evidence(probe, channelExporter(b.socket, probe.nonce));
  // The probe round itself: its honest answer on B, with one byte of s changed.
  await device.send(b, { ...sample, sig: flip(sample.sig, sample.sig.length - 2) });
  await expectRefusal(b, 'signature-invalid');
  for (const [region, at] of Object.entries(sigRegions(sample.sig))) {
    await forgedOnB(ctx, (ev) => ({ ...ev, sig: flip(ev.sig, at, 0x10) }));
    const r = expectMessage(await b.next(), 'result');
    assert.equal(r.reasons, ['signature-invalid'], `sig.${region}`);
  }
  await assertUnchanged(gw, device.id, before, 'forged sig');
});

it('body altered after signing: binding-mismatch; body that is not CBOR claims: malformed', async (ctx) => {
  const { gw, device, b } = ctx;
  const before = await deviceState(gw, device.id);
  // A byte inside a bstr (the nonce's last byte): still decodes, but SHA-256(body) is signed.
  await forgedOnB(ctx, (ev) => {
    const at = Buffer.from(ev.body).indexOf(Buffer.from('nonce')) + 5 + 2 + 31;
    return { ...ev, body: flip(ev.body, at) };
  });
  await expectRefusal(b, 'binding-mismatch');
  // Claims swapped for another valid claims map (a different time).
  await forgedOnB(ctx, (ev) => {
    const t = Buffer.from(ev.body).indexOf(Buffer.from('time'));
    return { ...ev, body: flip(ev.body, t + 4 + 8) };
  });
  await expectRefusal(b, 'binding-mismatch');
  // Not a claims map at all: a §2 failure, answered with error; the round stays open.
  const ev = await forgedOnB(ctx, (e) => ({ ...e, body: new Uint8Array([0xa1, 0x61, 0x78, 0xff]) }));
  assert.match(await expectError(b, 'malformed'), /body/);
  await device.send(b, { ...ev, attest: flip(ev.attest, 10) });
  await expectRefusal(b, 'signature-invalid');
  await assertUnchanged(gw, device.id, before, 'altered body');
});

it('wrong attest type and magic over the wire: the signature check catches them first', async (ctx) => {
  const { gw, device, b } = ctx;
  const before = await deviceState(gw, device.id);
  await forgedOnB(ctx, (ev) => {
    const attest = new Uint8Array(ev.attest);
    attest.set([0x80, 0x17], 4); // TPM_ST_ATTEST_CERTIFY's neighbour: TPM_ST_ATTEST_COMMAND_AUDIT
    return { ...ev, attest };
  });
  await expectRefusal(b, 'signature-invalid');
  await forgedOnB(ctx, (ev) => {
    const attest = new Uint8Array(ev.attest);
    attest.set([0x00, 0x00, 0x00, 0x00], 0);
    return { ...ev, attest };
  });
  await expectRefusal(b, 'signature-invalid');
  await assertUnchanged(gw, device.id, before, 'wrong type/magic');
  // parseQuoteAttest itself refuses them, naming the field.
  const sample = await device.evidence(await roundOnB(ctx), new Uint8Array(32));
  await device.send(b, { ...sample });
  await expectRefusal(b, 'binding-mismatch');
  const typed = new Uint8Array(sample.attest);
  typed.set([0x80, 0x17], 4);
  assert.throws(
    () => parseQuoteAttest(typed),
    (e: unknown) => e instanceof TpmFormatError && /0x8017/.test(String(e)),
  );
  const magic = flip(sample.attest, 0, 0x80);
  assert.throws(
    () => parseQuoteAttest(magic),
    (e: unknown) => e instanceof TpmFormatError && /magic/.test(String(e)),
  );
  assert.throws(
    () => parseQuoteAttest(new Uint8Array([...sample.attest, 0])),
    (e: unknown) => e instanceof TpmFormatError,
  );
});

it('activation missing or wrong for an AK other than the enrolled one: activation-failed, AK kept', async (ctx) => {
  const { gw, device } = ctx;
  const before = await deviceState(gw, device.id);
  const foreign = softAk();
  for (const activation of [undefined, new Uint8Array(randomBytes(32))]) {
    const c = await device.connect(gw.url, gw.ca);
    ctx.others.push(c);
    await device.send(c, device.hello({ ak: foreign.publicArea }));
    const challenge = expectMessage(await c.next(), 'challenge');
    assert.ok(challenge.activate, 'an AK that is not the enrolled one must be activated first');
    // The attacker cannot run ActivateCredential with the EK; it answers without, or guesses.
    const { activate: _, ...noActivate } = challenge;
    const ev = await device.evidence(noActivate, channelExporter(c.socket, challenge.nonce), (claims) =>
      activation ? { ...claims, activation } : claims,
    );
    await device.send(c, ev);
    await expectRefusal(c, 'activation-failed');
    await c.close();
  }
  await assertUnchanged(gw, device.id, before, 'foreign AK');
});

it('hello.ak that is not a Vigil AK (the EK): ak-unknown, connection closed', async (ctx) => {
  const { gw, device } = ctx;
  const before = await deviceState(gw, device.id);
  const c = await device.connect(gw.url, gw.ca);
  ctx.others.push(c);
  await device.send(c, device.hello({ ak: device.ek }));
  await expectError(c, 'ak-unknown');
  await eventually(() => !c.client.connected, 'the gateway closes the connection');
  await assertUnchanged(gw, device.id, before, 'EK as AK');
});

it('a device id that does not match the EK: identity-mismatch, closed; evidence before hello: unexpected-message', async (ctx) => {
  const { gw, device } = ctx;
  const other = deviceIdentity(new Uint8Array(randomBytes(64))).deviceId;
  const c = await device.connect(gw.url, gw.ca, { username: other });
  ctx.others.push(c);
  await device.send(c, device.hello());
  await expectError(c, 'identity-mismatch');
  await eventually(() => !c.client.connected, 'the gateway closes the connection');
  assert.is(gw.gateway.fleet.get(other), undefined, 'no record for the claimed id');

  const before = await deviceState(gw, device.id);
  const d = await device.connect(gw.url, gw.ca);
  ctx.others.push(d);
  const sample = await device.evidence(
    {
      t: 'challenge',
      round: new Uint8Array(16),
      nonce: new Uint8Array(32),
      reason: 'onboard',
      pcrs: [14],
      logs: {},
      deadline: 1000,
    },
    new Uint8Array(32),
  );
  await device.send(d, sample);
  await expectError(d, 'unexpected-message');
  await assertUnchanged(gw, device.id, before, 'evidence before hello');
  await d.close();
});

it('swPcr outside 8..15 (16, 23, 7): malformed, nothing recorded', async (ctx) => {
  const { gw, device } = ctx;
  const before = await deviceState(gw, device.id);
  for (const swPcr of [16, 23, 7]) {
    const c = await device.connect(gw.url, gw.ca);
    ctx.others.push(c);
    const hello = { ...device.hello(), swPcr } as unknown as Parameters<typeof encodeMessage>[0];
    const raw = encodeMessage(hello);
    await c.client.publishAsync(topics.out(device.id), Buffer.from(raw));
    const detail = await expectError(c, 'malformed');
    assert.match(detail, /swPcr/);
    await c.close();
  }
  await assertUnchanged(gw, device.id, before, 'bad swPcr');
});

/** Signed, bound, but wrong evidence on the attested connection: the device's own statement. */
async function ownStatement(
  ctx: Ctx,
  code: string,
  make: (c: Challenge) => Promise<Evidence>,
): Promise<void> {
  const { gw, device, a } = ctx;
  const before: DeviceState = await deviceState(gw, device.id);
  const c = await onDemandRound(gw, device, a);
  await device.send(a, await make(c));
  const r = expectMessage(await a.next(), 'result');
  assert.equal(r.reasons, [code]);
  const after = await deviceState(gw, device.id);
  assert.is(after.posture, 'contraindicated');
  assert.equal([after.ak, after.clock, after.swLog], [before.ak, before.clock, before.swLog]);
  assert.equal((await gw.gateway.store.round(toHex(c.round)))?.codes, [code]);
  await honestRound(gw, device, a, 'an honest round restores it');
}

it('PCR values that do not hash to the quoted digest: pcr-digest-mismatch', async (ctx) => {
  await ownStatement(ctx, 'pcr-digest-mismatch', (c) =>
    ctx.device.evidence(c, channelExporter(ctx.a.socket, c.nonce), (claims) => {
      const pcrs = new Map(claims.pcrs);
      pcrs.set(ctx.device.swPcr, new Uint8Array(32));
      return { ...claims, pcrs };
    }),
  );
});

it('a PCR selection other than asked: pcr-selection-mismatch', async (ctx) => {
  await ownStatement(ctx, 'pcr-selection-mismatch', (c) =>
    ctx.device.evidence({ ...c, pcrs: [0, ctx.device.swPcr] }, channelExporter(ctx.a.socket, c.nonce)),
  );
});

it('a software log that does not replay: log-mismatch', async (ctx) => {
  await ownStatement(ctx, 'log-mismatch', (c) =>
    ctx.device.evidence({ ...c, logs: { sw: 0 } }, channelExporter(ctx.a.socket, c.nonce), (claims) => ({
      ...claims,
      logs: {
        sw: {
          from: 0,
          entries: [{ ...SOFTWARE, digest: digestOf('something else') }],
          more: false,
        },
      },
    })),
  );
});

it('a version not allowed: sw-not-allowed', async (ctx) => {
  const { gw, device, a } = ctx;
  await device.measure(SOFTWARE.name, '6.6.6', digestOf('tools-fw 6.6.6 manifest'));
  const c = await onDemandRound(gw, device, a);
  await device.answer(a, c);
  await expectRefusal(a, 'sw-not-allowed');
  assert.is(gw.gateway.fleet.get(device.id)?.posture, 'contraindicated');
  assert.match((await gw.gateway.store.round(toHex(c.round)))?.detail ?? '', /6\.6\.6/);
});

it.run();
