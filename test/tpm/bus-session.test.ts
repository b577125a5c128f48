import { randomBytes } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type AttestationKeys, provisionAttestationKeys } from '../../firmware-shims/tpm/provision.ts';
import { RESPONSE_HMAC_INVALID } from '../../firmware-shims/tpm/salted-session.ts';
import { Tpm } from '../../firmware-shims/tpm/tpm.ts';
import { TpmBusError } from '../../firmware-shims/tpm/tpm-error.ts';
import { TpmTransportError } from '../../firmware-shims/tpm/transport.ts';
import { deviceIdentity } from '../../shared/protocol/identity.ts';
import { toHex } from '../../shared/tpm/bytes.ts';
import { TPM_CC, TPM_HT } from '../../shared/tpm/constants.ts';
import { makeCredential } from '../../shared/tpm/credential.ts';
import { objectName } from '../../shared/tpm/name.ts';
import { extendPcr } from '../../shared/tpm/pcr-values.ts';
import { checkQuote } from '../../shared/tpm/quote-check.ts';
import { parseSignature, verifySignature } from '../../shared/tpm/signature.ts';
import { type Swtpm, startSwtpm } from '../support/swtpm.ts';
import { commandCode, type Interposer, startInterposer } from './interposer.ts';

// The agent's TPM traffic against an interposer on the bus (test/tpm/interposer.ts between our
// transport and swtpm): what it can read, and what it can change without the agent noticing.
// Each refusal is shown next to its control: the same attack on a Tpm that keeps the bus in the
// clear goes through, so the tests can fail.

const rejection = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );

const contains = (haystack: Buffer, needle: Uint8Array): boolean =>
  haystack.indexOf(Buffer.from(needle)) !== -1;

function flipByte(response: Uint8Array, offset: number): Uint8Array {
  const out = Uint8Array.from(response);
  out[offset]! ^= 0x01;
  return out;
}

// Response layouts: header (10), parameterSize (4) when the tag is TPM_ST_SESSIONS, then parameters.
const parametersAt = (response: Uint8Array): number => (response[1] === 0x02 ? 14 : 10);
// TPM2_Quote: TPM2B_ATTEST first; a byte inside extraData (the qualifying data) of TPMS_ATTEST.
const attestByte = (response: Uint8Array): number => parametersAt(response) + 2 + 40;
// TPM2_PCR_Read: pcrUpdateCounter (4), a one-bank selection (4 + 2 + 1 + 3), count (4), size (2).
const firstPcrByte = (response: Uint8Array): number => parametersAt(response) + 4 + 10 + 4 + 2;

interface Bus {
  swtpm: Swtpm;
  interposer: Interposer;
  /** Our Tpm, through the interposer, with the bus protected once provisioned. */
  tpm: Tpm;
  keys: AttestationKeys;
  /** The same TPM through the interposer, same pin, bus in the clear: the control. */
  clear: Tpm;
  stop(): Promise<void>;
}

async function startBus(kind: 'ecc' | 'rsa'): Promise<Bus> {
  const swtpm = await startSwtpm();
  const interposer = await startInterposer(swtpm);
  const tpm = await Tpm.open(interposer.tcti);
  const keys = await provisionAttestationKeys(tpm, { ek: kind });
  const clear = await Tpm.open(interposer.tcti, undefined, { pinnedEk: tpm.pinnedEk!, protectBus: false });
  return {
    swtpm,
    interposer,
    tpm,
    keys,
    clear,
    async stop() {
      await tpm.close().catch(() => undefined);
      await clear.close().catch(() => undefined);
      await interposer.close();
      await swtpm.stop();
    },
  };
}

/** ActivateCredential as the challenge handler runs it; returns the credential and the blob sent. */
async function activate(
  tpm: Tpm,
  b: Bus,
  credential: Uint8Array,
): Promise<{ got: Uint8Array; blob: Uint8Array }> {
  const made = makeCredential(b.keys.ek.public, b.keys.ak.name, credential);
  const ek = await tpm.createPrimaryEk(b.keys.ek.kind);
  try {
    return {
      got: await tpm.activateCredential(b.keys.ak.handle, ek.handle, made.blob, made.secret),
      blob: made.blob,
    };
  } finally {
    await tpm.flush(ek.handle);
  }
}

for (const kind of ['ecc', 'rsa'] as const) {
  const t = suite(`TPM bus, ${kind} EK: ActivateCredential in a salted session`);
  let b: Bus;
  t.before(async () => {
    b = await startBus(kind);
  });
  t.after(async () => {
    await b?.stop();
  });

  t('provisioning pins the EK: its Name digest is the ekHash the device id is cut from', () => {
    assert.ok(b.tpm.busProtected);
    const pin = b.tpm.pinnedEk!;
    assert.is(pin.kind, kind);
    assert.is(toHex(pin.name), `000b${deviceIdentity(b.keys.ek.publicArea).ekHash}`);
  });

  t(
    'the credential comes back right and never crosses the bus in the clear; in the clear it does',
    async () => {
      const credential = randomBytes(32);
      b.interposer.clearRecording();
      const { got, blob } = await activate(b.tpm, b, credential);
      assert.is(toHex(got), toHex(credential));
      const recorded = b.interposer.recorded();
      assert.ok(recorded.length > 0, 'the interposer saw the traffic');
      assert.not.ok(contains(recorded, credential), 'the credential is not on the bus');
      assert.not.ok(contains(recorded, blob), 'nor the credential blob (the decrypt attribute)');
      assert.ok(b.tpm.busSessionHandle !== undefined, 'the session stays for the next command');

      const again = randomBytes(32);
      b.interposer.clearRecording();
      const control = await activate(b.clear, b, again);
      assert.is(toHex(control.got), toHex(again));
      assert.ok(contains(b.interposer.recorded(), again), 'control: in the clear the interposer reads it');
      assert.ok(contains(b.interposer.recorded(), control.blob));
    },
  );

  t('a credential for another AK still fails, and the next activation works', async () => {
    const made = makeCredential(b.keys.ek.public, objectName(b.keys.ek.publicArea), randomBytes(16));
    const ek = await b.tpm.createPrimaryEk(kind);
    const err = await rejection(
      b.tpm.activateCredential(b.keys.ak.handle, ek.handle, made.blob, made.secret),
    );
    await b.tpm.flush(ek.handle);
    assert.instance(err, Error);
    assert.match((err as Error).message, 'TPM2_ActivateCredential');
    const credential = randomBytes(20);
    assert.is(toHex((await activate(b.tpm, b, credential)).got), toHex(credential));
  });

  t.run();
}

const t = suite('TPM bus: HMAC integrity against an interposer');
let b: Bus;
t.before(async () => {
  b = await startBus('ecc');
});
t.after(async () => {
  await b?.stop();
});
t.before.each(() => {
  b.interposer.alter = undefined;
  b.interposer.answer = undefined;
});

const selection = [{ hash: 'sha256' as const, pcrs: [0, 16] }];

t('Quote, PCR_Read and PCR_Extend share one session across rounds, nonces rolling', async () => {
  b.interposer.clearRecording();
  let starts = 0;
  b.interposer.alter = (command, response) => {
    if (commandCode(command) === TPM_CC.StartAuthSession) starts++;
    return response;
  };
  await b.tpm.endBusSession();
  for (let round = 0; round < 3; round++) {
    const values = await b.tpm.pcrRead(selection[0]!.pcrs);
    await b.tpm.pcrExtend(16, randomBytes(32));
    const after = await b.tpm.pcrRead([16]);
    const qualifyingData = randomBytes(32);
    const q = await b.tpm.quote(b.keys.ak.handle, qualifyingData, selection);
    const check = checkQuote(b.keys.ak.public, q.attest, q.signature, {
      qualifyingData,
      selection,
      pcrValues: new Map([['sha256', new Map([...values, [16, after.get(16)!]])]]),
    });
    assert.ok(check.ok, check.ok ? '' : `${check.failure}: ${check.detail}`);
  }
  assert.is(starts, 1, 'one TPM2_StartAuthSession for three rounds');
  const sessions = await b.clear.handles(TPM_HT.HMAC_SESSION);
  assert.equal(sessions, [b.tpm.busSessionHandle], 'one HMAC session loaded: ours');
});

t('a flipped byte in the quote is refused by the HMAC check; in the clear it goes unnoticed', async () => {
  const flip = (command: Uint8Array, response: Uint8Array) =>
    commandCode(command) === TPM_CC.Quote ? flipByte(response, attestByte(response)) : response;
  b.interposer.alter = flip;
  const err = await rejection(b.tpm.quote(b.keys.ak.handle, randomBytes(32), selection));
  assert.instance(err, TpmBusError);
  const e = err as TpmBusError;
  assert.is(e.code, 'response-hmac-invalid');
  assert.match(e.command, /^TPM2_Quote on swtpm at 127\.0\.0\.1:\d+$/);
  assert.ok(e.message.endsWith(RESPONSE_HMAC_INVALID), e.message);
  assert.is(
    RESPONSE_HMAC_INVALID,
    'response HMAC does not verify: the TPM bus altered the answer or the session is out of sync',
  );

  // Control: the same flip on the clear bus returns a quote whose signature no longer matches.
  const q = await b.clear.quote(b.keys.ak.handle, randomBytes(32), selection);
  assert.not.ok(verifySignature(b.keys.ak.public, q.attest, parseSignature(q.signature)));

  b.interposer.alter = undefined;
  const qualifyingData = randomBytes(32);
  const good = await b.tpm.quote(b.keys.ak.handle, qualifyingData, selection);
  assert.ok(
    checkQuote(b.keys.ak.public, good.attest, good.signature, { qualifyingData }).ok,
    'a new session',
  );
});

t('a changed PCR value is refused; in the clear the agent would take it', async () => {
  const real = (await b.tpm.pcrRead([16])).get(16)!;
  b.interposer.alter = (command, response) =>
    commandCode(command) === TPM_CC.PCR_Read ? flipByte(response, firstPcrByte(response)) : response;
  const err = await rejection(b.tpm.pcrRead([16]));
  assert.instance(err, TpmBusError);
  assert.match((err as Error).message, /^TPM2_PCR_Read on .*: response HMAC does not verify/);
  const lied = (await b.clear.pcrRead([16])).get(16)!;
  assert.is.not(toHex(lied), toHex(real), 'control: the clear read returns the altered value');
  b.interposer.alter = undefined;
  assert.is(toHex((await b.tpm.pcrRead([16])).get(16)!), toHex(real));
});

t('a PCR_Extend swallowed by the bus (answered with an earlier success) is refused', async () => {
  let lastSuccess: Uint8Array | undefined;
  b.interposer.alter = (command, response) => {
    if (commandCode(command) === TPM_CC.PCR_Extend) lastSuccess = response;
    return response;
  };
  const before = (await b.tpm.pcrRead([16])).get(16)!;
  const first = randomBytes(32);
  await b.tpm.pcrExtend(16, first);
  assert.ok(lastSuccess);
  b.interposer.answer = (command) => (commandCode(command) === TPM_CC.PCR_Extend ? lastSuccess : undefined);
  const err = await rejection(b.tpm.pcrExtend(16, randomBytes(32)));
  assert.instance(err, TpmBusError);
  assert.match((err as Error).message, 'TPM2_PCR_Extend');
  b.interposer.answer = undefined;
  const now = (await b.tpm.pcrRead([16])).get(16)!;
  assert.is(toHex(now), toHex(extendPcr(before, first)), 'the TPM saw only the first extend');
});

t('an EK substituted on the bus when the session starts: no session is salted to it', async () => {
  // The interposer's key: another primary in the same TPM. Its CreatePrimary answer is recorded,
  // then served to a Tpm that recreates the EK to salt its session.
  let forged: Uint8Array | undefined;
  b.interposer.alter = (command, response) => {
    if (commandCode(command) === TPM_CC.CreatePrimary) forged = response;
    return response;
  };
  const decoy = await b.clear.createPrimaryEk(b.keys.ek.kind === 'ecc' ? 'rsa' : 'ecc');
  b.interposer.alter = undefined;
  assert.ok(forged);
  const fresh = await Tpm.open(b.interposer.tcti, undefined, { pinnedEk: b.tpm.pinnedEk! });
  try {
    b.interposer.answer = (command) => (commandCode(command) === TPM_CC.CreatePrimary ? forged : undefined);
    const err = await rejection(fresh.pcrRead([0]));
    b.interposer.answer = undefined;
    assert.instance(err, TpmBusError);
    assert.is((err as TpmBusError).code, 'ek-mismatch');
    assert.match((err as Error).message, 'the pinned EK (read at provisioning; its hash is the device id)');
    assert.is(fresh.busSessionHandle, undefined);
    // With the bus honest again, the same Tpm salts to the real EK.
    assert.is((await fresh.pcrRead([0])).size, 1);
    assert.ok(fresh.busSessionHandle !== undefined);
  } finally {
    await fresh.close();
    // The refused key was flushed by the Tpm that refused it, as any EK it recreates.
    await b.clear.flush(decoy.handle).catch(() => undefined);
  }
});

t('the session is started again when the TPM lost it (reset, or flushed by another client)', async () => {
  await b.tpm.pcrRead([0]);
  await b.swtpm.flushAll();
  assert.is((await b.tpm.pcrRead([0])).size, 1);
  await b.swtpm.restart();
  const qualifyingData = randomBytes(32);
  const q = await b.tpm.quote(b.keys.ak.handle, qualifyingData, selection);
  assert.ok(checkQuote(b.keys.ak.public, q.attest, q.signature, { qualifyingData }).ok);
  assert.is.not(b.tpm.busSessionHandle, undefined);
});

t(
  'a connection cut during a protected command: that session is dropped, the next command starts one',
  async () => {
    await b.tpm.pcrRead([0]);
    const before = b.tpm.busSessionHandle;
    b.interposer.answer = (command) => {
      if (commandCode(command) === TPM_CC.PCR_Extend) throw new Error('the interposer cuts the line');
      return undefined;
    };
    const err = await rejection(b.tpm.pcrExtend(16, randomBytes(32)));
    b.interposer.answer = undefined;
    assert.instance(err, TpmTransportError);
    assert.is(b.tpm.busSessionHandle, undefined);
    assert.not.ok(
      (await b.clear.handles(TPM_HT.HMAC_SESSION)).includes(before!),
      'the old session was flushed',
    );
    assert.is((await b.tpm.pcrRead([0])).size, 1);
  },
);

t('closing flushes the session', async () => {
  const tpm = await Tpm.open(b.interposer.tcti, undefined, { pinnedEk: b.tpm.pinnedEk! });
  await tpm.pcrRead([0]);
  const handle = tpm.busSessionHandle;
  assert.ok(handle !== undefined);
  assert.ok((await b.clear.handles(TPM_HT.HMAC_SESSION)).includes(handle));
  await tpm.close();
  assert.not.ok((await b.clear.handles(TPM_HT.HMAC_SESSION)).includes(handle));
});

t.run();
