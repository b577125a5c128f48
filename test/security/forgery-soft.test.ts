import { createHash, randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ClockState } from '../../gateway/model.ts';
import { appraise, expectedAkQualifiedName } from '../../gateway/verifier/appraise.ts';
import { ReferenceValues } from '../../gateway/verifier/reference-values.ts';
import { bindingDigest, type Evidence, encodeClaims } from '../../shared/protocol/index.ts';
import { ekTemplate, marshalPublic, objectName, parsePublic, toHex } from '../../shared/tpm/index.ts';
import { type AttestFields, buildAttest, softAk, softSign } from './soft-quote.ts';

// Structure checks behind a signature that verifies. A TPM's restricted AK cannot sign a
// TPMS_ATTEST with another magic or type (that is the point of TPM_GENERATED_VALUE), so these are
// made with a software key in a Vigil AK's public area and fed to the verifier's appraisal, the
// function the gateway runs for every round (gateway/verifier/appraise.ts).

const SW_PCR = 14;
const digest = new Uint8Array(createHash('sha256').update('fw 1.0 manifest').digest());
const pcr14 = new Uint8Array(createHash('sha256').update(new Uint8Array(32)).update(digest).digest());
const reference = new ReferenceValues(new Map(), [{ name: 'fw', version: '1.0', digest: toHex(digest) }]);

// An EK public area of the right template (its key is never used for a signature here).
const ekTemplateArea = ekTemplate('ecc');
const ekArea = marshalPublic({
  ...ekTemplateArea,
  unique: { x: new Uint8Array(randomBytes(32)), y: new Uint8Array(randomBytes(32)) },
} as typeof ekTemplateArea);
const ek = parsePublic(ekArea);
const ak = softAk();

function setup() {
  const nonce = new Uint8Array(randomBytes(32));
  const exporter = new Uint8Array(randomBytes(32));
  const body = encodeClaims({
    nonce,
    pcrs: new Map([[SW_PCR, pcr14]]),
    sw: { name: 'fw', version: '1.0' },
    logs: { sw: { from: 0, entries: [{ digest, name: 'fw', version: '1.0' }], more: false } },
  });
  const fields: AttestFields = {
    qualifiedSigner: expectedAkQualifiedName(objectName(ekArea), ak.publicArea),
    extraData: bindingDigest(exporter, body),
    pcrs: [SW_PCR],
    pcrValues: [pcr14],
  };
  const run = (over: Partial<AttestFields>, signer = ak, clock?: ClockState) => {
    const attest = buildAttest({ ...fields, ...over });
    const evidence: Evidence = {
      t: 'evidence',
      round: new Uint8Array(16),
      body,
      attest,
      sig: softSign(signer, attest),
    };
    return appraise(
      evidence,
      { nonce, exporter, pcrs: [SW_PCR] },
      {
        ek,
        ekName: objectName(ekArea),
        ak: { public: ak.public, publicArea: ak.publicArea },
        swPcr: SW_PCR,
        genuineHardware: false,
        ...(clock && { clock }),
      },
      reference,
    );
  };
  return run;
}

const codeOf = (a: ReturnType<ReturnType<typeof setup>>) => (a.ok ? 'ok' : a.code);

test('control: a correctly built and signed quote is affirmed', () => {
  assert.is(codeOf(setup()({})), 'ok');
});

test('a validly signed attest of type 0x8017 (not a quote): attest-invalid', () => {
  const a = setup()({ type: 0x8017 });
  assert.is(codeOf(a), 'attest-invalid');
  assert.match(a.ok ? '' : a.detail, /0x8017/);
});

test('a validly signed attest with a wrong magic: attest-invalid', () => {
  for (const magic of [0, 0xff544346, 0x474354ff]) assert.is(codeOf(setup()({ magic })), 'attest-invalid');
});

test('a validly signed attest with trailing bytes: attest-invalid', () => {
  assert.is(codeOf(setup()({ trailing: new Uint8Array([0]) })), 'attest-invalid');
});

test('a valid signature by the AK under another EK (qualifiedSigner): ak-unknown', () => {
  const otherEk = marshalPublic({
    ...ekTemplateArea,
    unique: { x: new Uint8Array(randomBytes(32)), y: new Uint8Array(randomBytes(32)) },
  } as typeof ekTemplateArea);
  assert.is(
    codeOf(setup()({ qualifiedSigner: expectedAkQualifiedName(objectName(otherEk), ak.publicArea) })),
    'ak-unknown',
  );
});

test('a quote signed by a key other than the enrolled AK: signature-invalid', () => {
  assert.is(codeOf(setup()({}, softAk())), 'signature-invalid');
});

test('clock going backwards behind a valid signature: clock-rollback (restartCount, clock, resetCount)', () => {
  const run = setup();
  const known = { clock: 5000n, resetCount: 3, restartCount: 2 };
  const cases: [Partial<AttestFields>, string][] = [
    [{ clock: 6000n, resetCount: 3, restartCount: 2 }, 'ok'],
    [{ clock: 6000n, resetCount: 3, restartCount: 1 }, 'clock-rollback'],
    [{ clock: 4999n, resetCount: 3, restartCount: 2 }, 'clock-rollback'],
    [{ clock: 9000n, resetCount: 2, restartCount: 9 }, 'clock-rollback'],
    [{ clock: 10n, resetCount: 4, restartCount: 0 }, 'ok'],
  ];
  for (const [fields, want] of cases) {
    const a = run(fields, ak, known);
    assert.is(
      codeOf(a),
      want,
      JSON.stringify(fields, (_, v) => (typeof v === 'bigint' ? Number(v) : v)),
    );
  }
});

test.run();
