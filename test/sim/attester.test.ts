import { createHash, randomBytes } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { appraise, expectedAkQualifiedName } from '../../gateway/verifier/appraise.ts';
import { ReferenceValues } from '../../gateway/verifier/reference-values.ts';
import type { Challenge } from '../../shared/protocol/index.ts';
import {
  AK_TEMPLATE,
  ekTemplate,
  makeCredential,
  matchesTemplate,
  objectName,
  parsePublic,
  parseQuoteAttest,
  parseSignature,
  verifySignature,
} from '../../shared/tpm/index.ts';
import { ActivationError } from '../equipment/sim/activation.ts';
import { SIM_SOFTWARE, SimAttester, softwareReference } from '../equipment/sim/attester.ts';
import { freshChallenge } from '../support/challenge.ts';

const it = suite('sim attester');

function challenge(over: Partial<Challenge> = {}): Challenge {
  return freshChallenge({ reason: 'on-demand', pcrs: [0, 14], logs: { sw: 0 }, deadline: 5000, ...over });
}

function context(sim: SimAttester, c: Challenge, exporter: Uint8Array, activation?: Uint8Array) {
  return {
    round: { nonce: c.nonce, exporter, pcrs: c.pcrs, ...(activation && { activation }) },
    device: {
      ek: parsePublic(sim.keys.ekPublicArea),
      ekName: objectName(sim.keys.ekPublicArea),
      ak: { public: parsePublic(sim.keys.akPublicArea), publicArea: sim.keys.akPublicArea },
      swPcr: sim.swPcr,
      genuineHardware: false,
    },
  };
}

const reference = new ReferenceValues(new Map(), [softwareReference(SIM_SOFTWARE)]);

it('keys have the shapes of the EK and AK templates; the same seed gives the same device', () => {
  const a = new SimAttester({ seed: 'x/1' });
  const b = new SimAttester({ seed: 'x/1' });
  const c = new SimAttester({ seed: 'x/2' });
  assert.ok(matchesTemplate(parsePublic(a.keys.ekPublicArea), ekTemplate('ecc')));
  assert.ok(matchesTemplate(parsePublic(a.keys.akPublicArea), AK_TEMPLATE));
  assert.equal(a.keys.ekPublicArea, b.keys.ekPublicArea);
  assert.not.equal(a.keys.ekPublicArea, c.keys.ekPublicArea);
  assert.equal(
    a.keys.akQualifiedName,
    expectedAkQualifiedName(objectName(a.keys.ekPublicArea), a.keys.akPublicArea),
  );
});

it('its quote is a real TPMS_ATTEST and TPMT_SIGNATURE, and passes appraisal', () => {
  const sim = new SimAttester();
  const c = challenge();
  const exporter = new Uint8Array(randomBytes(32));
  const ev = sim.evidence(c, exporter);
  const attest = parseQuoteAttest(ev.attest);
  assert.equal(attest.pcrSelect, [{ hash: 'sha256', pcrs: [0, 14] }]);
  assert.ok(verifySignature(parsePublic(sim.keys.akPublicArea), ev.attest, parseSignature(ev.sig)));
  const { round, device } = context(sim, c, exporter);
  const a = appraise(ev, round, device, reference);
  assert.ok(a.ok, a.ok ? '' : `${a.code}: ${a.detail}`);
  assert.is(a.status, 'affirming');
});

it('evidence bound to another connection is binding-mismatch', () => {
  const sim = new SimAttester();
  const c = challenge();
  const ev = sim.evidence(c, new Uint8Array(32));
  const { round, device } = context(sim, c, new Uint8Array(randomBytes(32)));
  const a = appraise(ev, round, device, reference);
  assert.is(a.ok ? 'ok' : a.code, 'binding-mismatch');
});

it('activation recovers what makeCredential made, and only for its own EK and AK', () => {
  const sim = new SimAttester();
  const secret = new Uint8Array(randomBytes(32));
  const made = makeCredential(parsePublic(sim.keys.ekPublicArea), sim.keys.akName, secret);
  assert.equal(sim.activate(made.blob, made.secret), secret);

  const other = new SimAttester();
  assert.throws(
    () => other.activate(made.blob, made.secret),
    (e: unknown) => e instanceof ActivationError,
  );
  const wrongAk = makeCredential(parsePublic(sim.keys.ekPublicArea), other.keys.akName, secret);
  assert.throws(() => sim.activate(wrongAk.blob, wrongAk.secret), /integrity HMAC/);

  const c = challenge({ activate: made });
  const exporter = new Uint8Array(randomBytes(32));
  const { round, device } = context(sim, c, exporter, secret);
  const a = appraise(sim.evidence(c, exporter), round, device, reference);
  assert.ok(a.ok, a.ok ? '' : `${a.code}: ${a.detail}`);
});

it('after a simulated reset the log restarts, resetCount rises, and the log is sent from 0', () => {
  const sim = new SimAttester();
  const before = parseQuoteAttest(sim.evidence(challenge(), new Uint8Array(32)).attest).clock;
  sim.reset();
  const c = challenge({ logs: { sw: 1 } });
  const ev = sim.evidence(c, new Uint8Array(32));
  const after = parseQuoteAttest(ev.attest).clock;
  assert.is(after.resetCount, before.resetCount + 1);
  const digest = createHash('sha256').update(new Uint8Array(32)).update(sim.log[0]!.digest).digest();
  assert.equal(new Uint8Array(digest), sim.pcrs.read(14));
});

it.run();
