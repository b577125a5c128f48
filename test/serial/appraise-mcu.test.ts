import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  appraiseMcu,
  appraiseMcus,
  type McuAppraisal,
  McuReferenceValues,
} from '../../gateway/verifier/mcu.ts';
import { rawPublicKey, signSign1 } from '../../shared/cose/sign1.ts';
import {
  decodeMcuResponse,
  encodeAliasClaims,
  encodeMcuRequest,
  identityHash,
  type McuRecord,
} from '../../shared/mcu/index.ts';
import { decodeEar, EAR_PROFILE, encodeEar } from '../../shared/protocol/ear.ts';
import { McuFirmware } from '../equipment/mcu/firmware.ts';

// The gateway's appraisal of one MCU, pure: evidence made by the emulator's firmware (noble),
// attacks made here with node:crypto keys, as an attacker with his own tools would.

const it = suite('MCU appraisal (gateway/verifier/mcu.ts)');
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const MODEL = 'vigil-emu-m0';
const IMAGE = new TextEncoder().encode('pump firmware 1.4.2');
const PUMP_SECRET = new Uint8Array(randomBytes(32));
const pump = new McuFirmware({ secret: PUMP_SECRET, image: IMAGE, model: MODEL });
const otherDevicesMcu = new McuFirmware({
  secret: new Uint8Array(randomBytes(32)),
  image: IMAGE,
  model: MODEL,
});
const DEVICE = '0a1b2c3d4e5f60718293a4b5';
const refs = new McuReferenceValues(
  [{ identity: identityHash(pump.identityKey) }, { identity: identityHash(otherDevicesMcu.identityKey) }],
  {
    [MODEL]: [hex(pump.firmwareDigest)],
  },
);
const nonce = () => new Uint8Array(randomBytes(32));
/** The round of DEVICE with this nonce. */
const at = (n: Uint8Array) => ({ nonce: n, deviceId: DEVICE });

/** The record an agent carries after asking `mcu` for evidence on `n`. */
function evidenceOf(mcu: McuFirmware, n: Uint8Array): Extract<McuRecord, { kind: 'evidence' }> {
  const r = decodeMcuResponse(mcu.answer(encodeMcuRequest({ t: 'evidence', req: 1, nonce: n })));
  if (r.t !== 'evidence') throw new Error(`the MCU answered ${r.t}`);
  return { kind: 'evidence', idk: r.idk, cert: r.cert, ev: r.ev };
}

function refused(a: McuAppraisal, code: string, detail: RegExp): void {
  assert.not.ok(a.ok, `accepted; expected ${code}`);
  if (a.ok) return;
  assert.is(a.code, code, a.detail);
  assert.is(a.status, 'contraindicated');
  assert.match(a.detail, detail);
}

function flip(bytes: Uint8Array, at: number): Uint8Array {
  const out = bytes.slice();
  out[at < 0 ? out.length + at : at]! ^= 0x01;
  return out;
}

it('genuine evidence for this round: affirming, identity and firmware affirmed', () => {
  const n = nonce();
  const a = appraiseMcu(evidenceOf(pump, n), at(n), refs);
  assert.ok(a.ok, a.ok ? '' : `${a.code}: ${a.detail}`);
  assert.is(a.status, 'affirming');
  assert.is(a.identity, identityHash(pump.identityKey));
  assert.is(a.model, MODEL);
  assert.is(a.firmware, hex(pump.firmwareDigest));
  assert.is(a.trust['instance-identity'], 2);
  assert.is(a.trust.executables, 2);
  assert.is(a.trust.hardware, 0, 'no manufacturer endorsement: hardware is not claimed');
});

it('replayed evidence from an earlier round is mcu-binding-mismatch', () => {
  const earlier = nonce();
  const record = evidenceOf(pump, earlier);
  assert.ok(appraiseMcu(record, at(earlier), refs).ok);
  refused(appraiseMcu(record, at(nonce()), refs), 'mcu-binding-mismatch', /replayed or moved/);
});

it("another device's MCU, answering that device's round, is mcu-binding-mismatch here", () => {
  const theirs = nonce();
  const ours = nonce();
  const moved = evidenceOf(otherDevicesMcu, theirs);
  assert.ok(appraiseMcu(moved, at(theirs), refs).ok, 'genuine where it was made');
  refused(appraiseMcu(moved, at(ours), refs), 'mcu-binding-mismatch', /another challenge/);
});

it('evidence signed under one identity but carried with another is refused', () => {
  const n = nonce();
  const mixed = { ...evidenceOf(pump, n), idk: otherDevicesMcu.identityKey };
  refused(appraiseMcu(mixed, at(n), refs), 'mcu-signature-invalid', /cert names key .* not the identity key/);
});

it('a forged evidence signature or certificate signature is mcu-signature-invalid', () => {
  const n = nonce();
  const record = evidenceOf(pump, n);
  refused(
    appraiseMcu({ ...record, ev: flip(record.ev, -1) }, at(n), refs),
    'mcu-signature-invalid',
    /^ev does not verify/,
  );
  refused(
    appraiseMcu({ ...record, cert: flip(record.cert, -1) }, at(n), refs),
    'mcu-signature-invalid',
    /^cert does not verify/,
  );
  // An attacker's own AK, certified with his own key, presented under the admitted identity.
  const attacker = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const forgedCert = signSign1(
    attacker.privateKey,
    encodeAliasClaims({ model: MODEL, ak: rawPublicKey(attacker.publicKey), fw: pump.firmwareDigest }),
  );
  const a = appraiseMcu({ ...record, cert: forgedCert }, at(n), refs);
  refused(a, 'mcu-signature-invalid', /^cert names key/);
  assert.is(a.trust['instance-identity'], 99);
});

it('an attestation key certified by an unadmitted identity is mcu-identity-unknown', () => {
  const n = nonce();
  const stranger = new McuFirmware({ secret: new Uint8Array(randomBytes(32)), image: IMAGE, model: MODEL });
  const a = appraiseMcu(evidenceOf(stranger, n), at(n), refs);
  refused(
    a,
    'mcu-identity-unknown',
    new RegExp(
      `${identityHash(stranger.identityKey)} .* is not admitted: .*vigil-gateway mcu admit ${identityHash(stranger.identityKey)} --device ${DEVICE}`,
    ),
  );
  assert.is(a.trust['instance-identity'], 97);
  if (!a.ok) assert.is(a.identity, identityHash(stranger.identityKey), 'operators see whom to admit');
  // A certificate verified in an earlier round is remembered; admission is still asked every round.
  const genuine = evidenceOf(pump, n);
  assert.ok(appraiseMcu(genuine, at(n), refs).ok);
  const revoked = new McuReferenceValues([], { [MODEL]: [hex(pump.firmwareDigest)] });
  refused(appraiseMcu(genuine, at(n), revoked), 'mcu-identity-unknown', /is not admitted/);
});

it('changed firmware is mcu-firmware-changed; a model without references too', () => {
  const n = nonce();
  // Same device secret, another image: same identity, another attestation key and digest.
  const flashed = new McuFirmware({
    secret: PUMP_SECRET,
    image: new TextEncoder().encode('pump firmware 1.4.2 + implant'),
    model: MODEL,
  });
  assert.equal(flashed.identityKey, pump.identityKey, 'still the admitted identity');
  const a = appraiseMcu(evidenceOf(flashed, n), at(n), refs);
  refused(
    a,
    'mcu-firmware-changed',
    new RegExp(`firmware ${hex(flashed.firmwareDigest)} is not a reference value of model ${MODEL}`),
  );
  assert.is(a.trust.executables, 33);
  const noRefs = new McuReferenceValues([{ identity: identityHash(pump.identityKey) }], {});
  refused(
    appraiseMcu(evidenceOf(pump, n), at(n), noRefs),
    'mcu-firmware-changed',
    /no reference firmware digests are configured for model/,
  );
});

it('no record, an absent or silent MCU, and a malformed one: their own codes', () => {
  const n = nonce();
  refused(appraiseMcu(undefined, at(n), refs), 'mcu-absent', /reported nothing/);
  refused(
    appraiseMcu({ kind: 'fault', fault: 'timeout', detail: 'no answer within 500 ms' }, at(n), refs),
    'mcu-absent',
    /timeout: no answer/,
  );
  refused(
    appraiseMcu({ kind: 'fault', fault: 'absent', detail: 'unplugged' }, at(n), refs),
    'mcu-absent',
    /absent: unplugged/,
  );
  refused(
    appraiseMcu({ kind: 'fault', fault: 'malformed', detail: 'frame-crc-mismatch' }, at(n), refs),
    'mcu-malformed',
    /frame-crc-mismatch/,
  );
  const record = evidenceOf(pump, n);
  refused(appraiseMcu({ ...record, cert: Uint8Array.of(1, 2, 3) }, at(n), refs), 'mcu-malformed', /^cert: /);
  refused(appraiseMcu({ ...record, ev: record.cert }, at(n), refs), 'mcu-malformed', /ev\.challenge/);
  refused(
    appraiseMcu({ ...record, idk: new Uint8Array(65).fill(4) }, at(n), refs),
    'mcu-malformed',
    /not a point on P-256/,
  );
});

it('appraiseMcus: per slot, in slot order; expected slots missing are absent', () => {
  const n = nonce();
  const claims = new Map<string, McuRecord>([
    ['pump', evidenceOf(pump, n)],
    ['fan', { kind: 'fault', fault: 'absent', detail: 'cannot open /dev/ttyUSB1' }],
  ]);
  const all = appraiseMcus(claims, at(n), refs, ['pump', 'valve']);
  assert.equal([...all.keys()], ['fan', 'pump', 'valve']);
  assert.ok(all.get('pump')?.ok);
  refused(all.get('fan')!, 'mcu-absent', /cannot open/);
  refused(all.get('valve')!, 'mcu-absent', /reported nothing/);
  assert.is(appraiseMcus(undefined, at(n), refs).size, 0, 'a device without MCUs has none');
});

it('an MCU admitted for one device is refused on another: a relay through another agent', () => {
  const n = nonce();
  const bound = new McuReferenceValues([{ identity: identityHash(pump.identityKey), device: DEVICE }], {
    [MODEL]: [hex(pump.firmwareDigest)],
  });
  assert.ok(appraiseMcu(evidenceOf(pump, n), at(n), bound).ok, 'on its own device');
  const elsewhere = 'ffffffffffffffffffffffff';
  const a = appraiseMcu(evidenceOf(pump, n), { nonce: n, deviceId: elsewhere }, bound);
  refused(
    a,
    'mcu-identity-unknown',
    new RegExp(`admitted for device ${DEVICE} only, not ${elsewhere}: relayed`),
  );
  assert.is(a.trust['instance-identity'], 97);
});

it('an MCU appraisal is an EAR submodule as it stands', () => {
  const n = nonce();
  const a = appraiseMcu(evidenceOf(pump, n), at(n), refs);
  const bad = appraiseMcu(undefined, at(n), refs);
  const ear = {
    profile: EAR_PROFILE,
    iat: 1,
    nonce: n,
    verifier: { developer: 'vigil', build: 'test' },
    submods: {
      device: { status: 'affirming', trust: { 'instance-identity': 2 }, policyId: 'p' },
      'device/pump': { status: a.status, trust: a.trust, policyId: 'p' },
      'device/valve': {
        status: bad.status,
        trust: bad.trust,
        policyId: 'p',
        codes: bad.ok ? [] : [bad.code],
      },
    },
  } as const;
  const back = decodeEar(encodeEar(ear));
  assert.is(back.submods['device/pump']?.status, 'affirming');
  assert.equal(back.submods['device/pump']?.trust, { 'instance-identity': 2, executables: 2 });
  assert.equal(back.submods['device/valve']?.codes, ['mcu-absent']);
});

it.run();
