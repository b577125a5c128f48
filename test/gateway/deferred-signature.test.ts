import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { appraise, withSignature } from '../../gateway/verifier/appraise.ts';
import { ReferenceValues } from '../../gateway/verifier/reference-values.ts';
import { runSignatureCheck } from '../../shared/tpm/index.ts';
import { SIM_SOFTWARE, softwareReference } from '../equipment/sim/attester.ts';
import { simAppraisal } from './fixtures/sim-appraisal.ts';

// An appraisal that leaves the AK's signature to a worker pool must end exactly where one that
// checks it at once ends: the same result when it verifies, and PROTOCOL.md §5's order when it
// does not (signature-invalid over any later failure, never over an earlier one).

const { evidence, round, device } = simAppraisal('deferred/1');
const reference = new ReferenceValues(new Map(), [softwareReference(SIM_SOFTWARE)]);

/** The deferred appraisal settled with the signature's real verdict. */
function deferred(e = evidence, r = round): ReturnType<typeof appraise> {
  const a = appraise(e, r, device, reference, { deferSignature: true });
  return a.signature ? withSignature(a, runSignatureCheck(a.signature)) : a;
}

test('a good signature: the same appraisal as checked at once', () => {
  const owed = appraise(evidence, round, device, reference, { deferSignature: true });
  assert.ok(owed.signature, 'the check is owed');
  assert.equal(deferred(), appraise(evidence, round, device, reference));
  assert.is(deferred().ok, true);
});

test('a bad signature decides over a later failure, as it does checked at once', () => {
  const flipped = Uint8Array.from(evidence.attest);
  flipped[flipped.length - 1]! ^= 1;
  const bad = { ...evidence, attest: flipped };
  const otherNonce = { ...round, nonce: new Uint8Array(32).fill(7) };
  const owed = appraise(bad, otherNonce, device, reference, { deferSignature: true });
  assert.is(owed.ok ? 'ok' : owed.code, 'binding-mismatch', 'without the signature, a later stage fails');
  const final = deferred(bad, otherNonce);
  assert.is(final.ok ? 'ok' : final.code, 'signature-invalid');
  assert.equal(final, appraise(bad, otherNonce, device, reference));
  assert.is(final.signature, undefined);
});

test('a failure before the signature stage owes no signature', () => {
  const activating = { ...round, activation: new Uint8Array(32).fill(3) };
  const a = appraise(evidence, activating, device, reference, { deferSignature: true });
  assert.is(a.ok ? 'ok' : a.code, 'activation-failed');
  assert.is(a.signature, undefined);
  assert.equal(withSignature(a, false), a);
});

test.run();
