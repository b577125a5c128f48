import { createHash } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ReferenceValues } from '../../gateway/verifier/reference-values.ts';
import { Refusal } from '../../gateway/verifier/refusal.ts';
import {
  activationStage,
  akStage,
  attestStage,
  bindingStage,
  bodyStage,
  clockStage,
  firmwareStage,
  pcrDigestStage,
  pcrSelectionStage,
  signatureStage,
  signerStage,
  softwareLogStage,
  softwareStage,
} from '../../gateway/verifier/stages.ts';
import { encodeClaims } from '../../shared/protocol/index.ts';
import { objectName, parseSignature, toHex } from '../../shared/tpm/index.ts';
import { SIM_SOFTWARE, SimAttester, softwareReference } from '../equipment/sim/attester.ts';
import { simAppraisal } from './fixtures/sim-appraisal.ts';

// The appraisal's stages one by one, on evidence a sim attester made (a real TPMS_ATTEST signed
// by a software AK whose qualified Name is that of an AK under its EK): each accepts the honest
// input and refuses the one thing it checks, with its code.

const it = suite('appraisal stages');

const { attester, challenge, evidence, round, device } = simAppraisal('stages/1');
const claims = bodyStage(evidence.body);
const attest = attestStage(evidence.attest);
const sig = parseSignature(evidence.sig);
const reference = new ReferenceValues(new Map([[0, [toHex(new Uint8Array(32))]]]), [
  softwareReference(SIM_SOFTWARE),
]);

function refusedWith(code: string, f: () => unknown): Refusal {
  try {
    f();
  } catch (e) {
    assert.instance(e, Refusal);
    assert.is((e as Refusal).code, code);
    return e as Refusal;
  }
  assert.unreachable(`expected ${code}`);
  throw new Error('unreachable');
}

it('malformed: a body that is not a claims map', () => {
  assert.equal(claims.nonce, challenge.nonce);
  refusedWith('malformed', () => bodyStage(Uint8Array.of(0xa0)));
});

it('activation-failed: absent or wrong when asked; nothing asked, nothing checked', () => {
  activationStage(claims, round);
  refusedWith('activation-failed', () =>
    activationStage(claims, { ...round, activation: new Uint8Array(32) }),
  );
  const withSecret = bodyStage(encodeClaims({ ...claims, activation: new Uint8Array(32).fill(3) }));
  refusedWith('activation-failed', () =>
    activationStage(withSecret, { ...round, activation: new Uint8Array(32) }),
  );
  activationStage(withSecret, { ...round, activation: new Uint8Array(32).fill(3) });
});

it('ak-unknown: no AK; a signer that is not the AK under this EK', () => {
  assert.ok(akStage(device));
  refusedWith('ak-unknown', () => akStage({ ...device, ak: undefined as never }));
  signerStage(attest, device, attester.keys.akPublicArea);
  const other = new SimAttester({ seed: 'stages/other' });
  refusedWith('ak-unknown', () =>
    signerStage(
      attest,
      { ...device, ekName: objectName(other.keys.ekPublicArea) },
      attester.keys.akPublicArea,
    ),
  );
});

it('signature-invalid and attest-invalid', () => {
  assert.is(signatureStage(device.ak!.public, evidence).hash, 'sha256');
  const flipped = Uint8Array.from(evidence.attest);
  flipped[10]! ^= 1;
  refusedWith('signature-invalid', () => signatureStage(device.ak!.public, { ...evidence, attest: flipped }));
  refusedWith('signature-invalid', () =>
    signatureStage(device.ak!.public, { ...evidence, sig: Uint8Array.of(0, 1) }),
  );
  refusedWith('attest-invalid', () => attestStage(Uint8Array.of(0xff, 0x54, 0x43, 0x47)));
});

it('binding-mismatch: another connection, another body, another nonce', () => {
  bindingStage(attest, claims, round, evidence.body);
  refusedWith('binding-mismatch', () =>
    bindingStage(attest, claims, { ...round, exporter: new Uint8Array(32) }, evidence.body),
  );
  refusedWith('binding-mismatch', () =>
    bindingStage(attest, claims, round, Uint8Array.of(...evidence.body, 0)),
  );
  refusedWith('binding-mismatch', () =>
    bindingStage(attest, claims, { ...round, nonce: new Uint8Array(32) }, evidence.body),
  );
});

it('pcr-selection-mismatch and pcr-digest-mismatch', () => {
  pcrSelectionStage(attest, [0, 14]);
  refusedWith('pcr-selection-mismatch', () => pcrSelectionStage(attest, [0, 7, 14]));
  pcrDigestStage(attest, claims, [0, 14], sig);
  const tampered = { ...claims, pcrs: new Map([...claims.pcrs, [0, new Uint8Array(32).fill(1)]]) };
  refusedWith('pcr-digest-mismatch', () => pcrDigestStage(attest, tampered, [0, 14], sig));
  const missing = { ...claims, pcrs: new Map([[14, claims.pcrs.get(14)!]]) };
  refusedWith('pcr-digest-mismatch', () => pcrDigestStage(attest, missing, [0, 14], sig));
});

it('log-mismatch: the log replays to the PCR and names what runs', () => {
  const state = softwareLogStage(claims, device, attest);
  assert.equal(
    state.running.map((s) => s.name),
    [SIM_SOFTWARE.name],
  );
  refusedWith('log-mismatch', () => softwareLogStage({ ...claims, logs: {} }, device, attest));
  refusedWith('log-mismatch', () =>
    softwareLogStage({ ...claims, sw: { name: SIM_SOFTWARE.name, version: '9' } }, device, attest),
  );
  const wrongPcr = { ...claims, pcrs: new Map([...claims.pcrs, [14, new Uint8Array(32)]]) };
  refusedWith('log-mismatch', () => softwareLogStage(wrongPcr, device, attest));
});

it('clock-rollback: a reset is a reboot; going back without one is refused', () => {
  const now = attest.clock;
  assert.is(clockStage(undefined, now), false);
  assert.is(clockStage({ ...now, resetCount: now.resetCount - 1 } as never, now), true, 'a reboot');
  refusedWith('clock-rollback', () => clockStage({ ...now, clock: now.clock + 1n }, now));
  refusedWith('clock-rollback', () => clockStage({ ...now, restartCount: now.restartCount + 1 }, now));
  refusedWith('clock-rollback', () => clockStage({ ...now, resetCount: now.resetCount + 1 }, now));
});

it('clock-rollback: a clock that ran further than wall time allows, reset or not', () => {
  const now = attest.clock;
  const before = (ms: bigint) => ({ ...now, clock: now.clock - ms });
  // 10 minutes of wall time: up to 12 minutes (rate tolerance) plus a minute of slack may pass.
  assert.is(clockStage(before(600_000n), now, 600_000), false, 'in step with wall time');
  assert.is(clockStage(before(780_000n), now, 600_000), false, 'the most a TPM clock may run');
  refusedWith('clock-rollback', () => clockStage(before(780_001n), now, 600_000));
  refusedWith('clock-rollback', () => clockStage(before(3_600_000n), now, 1000));
  // Also across a reset: the clock does not run while the TPM is off.
  const reset = (ms: bigint) => ({ ...before(ms), resetCount: now.resetCount - 1 });
  assert.is(clockStage(reset(1000n), now, 5000), true);
  refusedWith('clock-rollback', () => clockStage(reset(3_600_000n), now, 5000));
  // Back across a reset, by any amount: a TPM resumes from its last write of the clock to NV.
  assert.is(clockStage({ ...reset(0n), clock: now.clock + 10n * 3_600_000n }, now, 5000), true);
  assert.is(clockStage(before(3_600_000n), now, -1), false, 'a gateway clock that stepped back: no measure');
  assert.is(clockStage(before(3_600_000n), now), false, 'no wall time recorded: not judged');
});

it('sw-not-allowed and firmware-changed against reference values; unmeasured PCRs reported', () => {
  const state = softwareLogStage(claims, device, attest);
  softwareStage(state, reference);
  refusedWith('sw-not-allowed', () => softwareStage(state, new ReferenceValues(new Map(), [])));
  assert.equal(firmwareStage(claims, [0, 14], 14, reference), { unmeasured: [], judged: 1 });
  assert.equal(firmwareStage(claims, [0, 14], 14, new ReferenceValues(new Map(), [])), {
    unmeasured: [0],
    judged: 0,
  });
  const other = new ReferenceValues(new Map([[0, [toHex(createHash('sha256').update('x').digest())]]]), []);
  refusedWith('firmware-changed', () => firmwareStage(claims, [0, 14], 14, other));
});

it.run();
