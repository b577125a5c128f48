import { randomBytes } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { defaultMcuPolicy, parseMcuPolicy } from '../../gateway/mcus/policy.ts';
import { Field, PolicyError } from '../../gateway/policy/json-fields.ts';
import { McuPolicy } from '../../gateway/verifier/mcu-policy.ts';
import { appraiseRoundMcus, NO_MCUS } from '../../gateway/verifier/mcu-round.ts';
import { identityHash, type McuRecord, mcuSubmodule, parseMcuSubmodule } from '../../shared/mcu/index.ts';
import { McuFirmware } from '../equipment/mcu/firmware.ts';
import { answerOf } from './raw-mcu.ts';

// The gateway's view of one round's MCUs, pure: the `mcus` policy section as parsed, which slots
// a device must report, what a failure does to the device, the submodules of the EAR.

const it = suite('MCUs of a round: policy, expected slots, failure scope, submodules');
const DEVICE = '0a1b2c3d4e5f60718293a4b5';
const MODEL = 'vigil-emu-m0';
const image = new TextEncoder().encode('valve firmware 0.9');
const mcu = () => new McuFirmware({ secret: new Uint8Array(randomBytes(32)), image, model: MODEL });
const digest = (m: McuFirmware) => Buffer.from(m.firmwareDigest).toString('hex');
const parse = (json: unknown) => parseMcuPolicy(new Field('policy.json', 'mcus', json));

function evidence(m: McuFirmware, nonce: Uint8Array): McuRecord {
  const r = answerOf(m, { t: 'evidence', req: 1, nonce });
  if (r.t !== 'evidence') throw new Error(`the MCU answered ${r.t}`);
  return { kind: 'evidence', idk: r.idk, cert: r.cert, ev: r.ev };
}

it('submodule names: {deviceId}/{slot}, and back', () => {
  assert.is(mcuSubmodule(DEVICE, 'pump'), `${DEVICE}/pump`);
  assert.equal(parseMcuSubmodule(`${DEVICE}/pump-2`), { deviceId: DEVICE, slot: 'pump-2' });
  assert.is(parseMcuSubmodule(DEVICE), undefined, "the device's own submodule");
  assert.is(parseMcuSubmodule(`${DEVICE}/Pump`), undefined);
  assert.is(parseMcuSubmodule('/pump'), undefined);
});

it('expected slots follow the labels; the scope is the slot’s, else the model’s, else the default', () => {
  const p = new McuPolicy(
    parse({
      onFailure: 'submodule',
      slots: { pump: { onFailure: 'device' }, fan: { onFailure: 'submodule' } },
      models: { 'acme-pump-r2': { onFailure: 'device' } },
      expect: [
        { labels: {}, slots: ['pump'] },
        { labels: { site: 'plant-1', line: '2' }, slots: ['fan', 'pump'] },
      ],
    }),
    [],
  );
  assert.equal(p.expectedSlots({}), ['pump']);
  assert.equal(p.expectedSlots({ site: 'plant-1' }), ['pump'], 'every label of the entry must match');
  assert.equal(p.expectedSlots({ site: 'plant-1', line: '2', x: 'y' }), ['fan', 'pump']);
  assert.equal(p.expectedSlots({ toString: 'x' }), ['pump'], 'labels are data, not object members');
  assert.is(p.scope('pump'), 'device');
  assert.is(p.scope('fan', 'acme-pump-r2'), 'submodule', 'the slot wins over the model');
  assert.is(p.scope('valve', 'acme-pump-r2'), 'device', 'the model wins over the default');
  assert.is(p.scope('valve', 'other'), 'submodule');
  assert.is(p.scope('valve'), 'submodule', 'an MCU whose model is unknown (absent) takes the default');
  assert.is(p.scope('constructor'), 'submodule');
  assert.equal(new McuPolicy(defaultMcuPolicy(), []).expectedSlots({ a: 'b' }), []);
});

it('a device without MCUs and expected to have none costs nothing', () => {
  const p = new McuPolicy(parse({}), []);
  const out = appraiseRoundMcus(
    { claims: undefined, nonce: randomBytes(32), deviceId: DEVICE, labels: {} },
    p,
    'p',
  );
  assert.is(out, NO_MCUS);
});

it('each MCU its own submodule; only a failure the policy makes the device’s fails the device', () => {
  const pump = mcu();
  // Another admitted MCU of the same model, running another image.
  const other = new McuFirmware({
    secret: new Uint8Array(randomBytes(32)),
    image: new Uint8Array([1]),
    model: MODEL,
  });
  const nonce = new Uint8Array(randomBytes(32));
  const admissions = [pump, other].map((m) => ({ identity: identityHash(m.identityKey), admittedAt: 1 }));
  const settings = (onFailure: 'submodule' | 'device') =>
    parse({
      firmware: { [MODEL]: [digest(pump)] },
      onFailure,
      slots: { fan: { onFailure: 'submodule' } },
      expect: [{ labels: {}, slots: ['door'] }],
    });
  const claims = new Map<string, McuRecord>([
    ['pump', evidence(pump, nonce)],
    ['fan', { kind: 'fault', fault: 'timeout', detail: 'no answer within 500 ms' }],
    ['valve', evidence(other, nonce)],
  ]);
  const input = { claims, nonce, deviceId: DEVICE, labels: {} };

  const lenient = appraiseRoundMcus(input, new McuPolicy(settings('submodule'), admissions), 'policy-1');
  assert.equal(
    lenient.results.map((r) => [r.slot, r.code ?? r.status, r.onFailure]),
    [
      ['door', 'mcu-absent', 'submodule'],
      ['fan', 'mcu-absent', 'submodule'],
      ['pump', 'affirming', 'submodule'],
      ['valve', 'mcu-firmware-changed', 'submodule'],
    ],
  );
  assert.is(lenient.deviceFailure, undefined);
  assert.equal(
    Object.keys(lenient.submods),
    ['door', 'fan', 'pump', 'valve'].map((s) => `${DEVICE}/${s}`),
  );
  assert.equal(lenient.submods[`${DEVICE}/pump`], {
    status: 'affirming',
    trust: { ...lenient.submods[`${DEVICE}/pump`]!.trust, 'instance-identity': 2, executables: 2 },
    policyId: 'policy-1',
  });
  assert.equal(lenient.submods[`${DEVICE}/valve`]?.codes, ['mcu-firmware-changed']);
  const pumpResult = lenient.results.find((r) => r.slot === 'pump');
  assert.is(pumpResult?.identity, identityHash(pump.identityKey));
  assert.is(pumpResult?.firmware, digest(pump));

  // The default turned to `device` (the fan's slot stays lenient): the first failure in
  // appraisal order decides the device's code, the detail names every MCU that counts.
  const strict = appraiseRoundMcus(input, new McuPolicy(settings('device'), admissions), 'policy-2');
  assert.equal(strict.deviceFailure?.code, 'mcu-absent');
  assert.match(
    strict.deviceFailure?.detail ?? '',
    /^MCU door: mcu-absent \(.*\); MCU valve: mcu-firmware-changed/,
  );
  assert.not.match(strict.deviceFailure?.detail ?? '', /fan/);
  assert.is(strict.results.find((r) => r.slot === 'fan')?.onFailure, 'submodule');
});

it('the mcus policy section refuses mistakes, naming the field', () => {
  const wrong: [unknown, string, RegExp][] = [
    [{ onFailure: 'all' }, 'mcus.onFailure', /expected one of "submodule", "device", got "all"/],
    [{ firmware: { m0: [] } }, 'mcus.firmware.m0', /at least one digest/],
    [{ firmware: { m0: ['abc'] } }, 'mcus.firmware.m0[0]', /SHA-256 digest as 64 hex digits/],
    [{ firmware: { ['m'.repeat(65)]: ['ab'.repeat(32)] } }, `mcus.firmware.${'m'.repeat(65)}`, /1 to 64/],
    [{ slots: { Pump: { onFailure: 'device' } } }, 'mcus.slots.Pump', /slot name .* as the key/],
    [{ slots: { pump: 'device' } }, 'mcus.slots.pump', /expected an object with keys onFailure/],
    [{ slots: { pump: {} } }, 'mcus.slots.pump.onFailure', /expected one of/],
    [{ models: { m0: { onFailure: 'device', x: 1 } } }, 'mcus.models.m0.x', /unknown key/],
    [{ expect: [{ labels: {} }] }, 'mcus.expect[0].slots', /expected a list of slot names/],
    [{ expect: [{ labels: {}, slots: [] }] }, 'mcus.expect[0].slots', /at least one slot/],
    [{ expect: [{ labels: { a: 1 }, slots: ['x'] }] }, 'mcus.expect[0].labels.a', /non-empty string/],
    [{ expect: [{ slots: ['Fan'] }] }, 'mcus.expect[0].slots[0]', /a slot name/],
    [
      { expected: [] },
      'mcus.expected',
      /unknown key \(allowed here: firmware, onFailure, slots, models, expect\)/,
    ],
  ];
  for (const [json, field, message] of wrong) {
    try {
      parse(json);
    } catch (e) {
      assert.instance(e, PolicyError);
      assert.is((e as PolicyError).field, field, JSON.stringify(json));
      assert.match((e as PolicyError).message, message);
      continue;
    }
    assert.unreachable(`accepted ${JSON.stringify(json)}`);
  }
  assert.equal(parse({ firmware: { m0: ['AB'.repeat(32)] }, expect: [{ slots: ['a', 'a'] }] }), {
    firmware: { m0: ['ab'.repeat(32)] },
    onFailure: 'submodule',
    slots: {},
    models: {},
    expect: [{ labels: {}, slots: ['a'] }],
  });
});

it.run();
