import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeCbor } from '../../shared/cbor/encode.ts';
import {
  decodeAliasCertificate,
  decodeMcuClaims,
  decodeMcuEvidence,
  decodeMcuRequest,
  decodeMcuResponse,
  encodeMcuRequest,
  encodeMcuResponse,
  type McuClaims,
  writeMcuClaims,
} from '../../shared/mcu/index.ts';
import { decodeClaims, encodeClaims } from '../../shared/protocol/claims.ts';
import { ProtocolError } from '../../shared/protocol/errors.ts';
import { McuFirmware } from '../equipment/mcu/firmware.ts';
import { mutatedBytes, onlyTypedMalformed } from '../support/fuzz.ts';

const it = suite('MCU messages and the mcus claim');
const SEED = 0x5eed_0302;
const mcu = new McuFirmware({
  secret: new Uint8Array(32).fill(3),
  image: Uint8Array.of(1, 2, 3),
  model: 'm0',
});
const nonce = new Uint8Array(32).fill(0x42);

function answer(req: Parameters<typeof encodeMcuRequest>[0]) {
  return mcu.answer(encodeMcuRequest(req));
}

function detailOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof ProtocolError && e.code === 'malformed') return e.detail;
    throw e;
  }
  throw new Error('accepted, expected malformed');
}

it('requests and responses round-trip', () => {
  for (const r of [
    { t: 'hello', req: 0 },
    { t: 'evidence', req: 65_535, nonce },
  ] as const) {
    assert.equal(decodeMcuRequest(encodeMcuRequest(r)), r);
  }
  const hello = decodeMcuResponse(answer({ t: 'hello', req: 7 }));
  assert.equal(hello, { t: 'hello', req: 7, idk: mcu.identityKey, cert: mcu.cert });
  const ev = decodeMcuResponse(answer({ t: 'evidence', req: 8, nonce }));
  assert.is(ev.t, 'evidence');
  const error = { t: 'error', code: 'busy', detail: 'sampling' } as const;
  assert.equal(decodeMcuResponse(encodeMcuResponse(error)), error);
});

it('defects are malformed with the key, what was expected and what came', () => {
  assert.match(
    detailOf(() => decodeMcuRequest(encodeCbor({ v: 2, t: 'hello', req: 1 }))),
    /request\.v: expected uint from 1 to 1, got uint 2/,
  );
  assert.match(
    detailOf(() => decodeMcuRequest(encodeCbor({ v: 1, t: 'reboot', req: 1 }))),
    /request\.t: expected one of hello, evidence, got "reboot"/,
  );
  assert.match(
    detailOf(() => decodeMcuRequest(encodeCbor({ v: 1, t: 'evidence', req: 1 }))),
    /request\.nonce: expected bstr of 32 bytes, got nothing/,
  );
  assert.match(
    detailOf(() => decodeMcuRequest(encodeCbor({ v: 1, t: 'hello', req: 70_000 }))),
    /request\.req: expected uint from 0 to 65535, got uint 70000/,
  );
  const bigCert = encodeCbor({ v: 1, t: 'hello', req: 1, idk: mcu.identityKey, cert: new Uint8Array(513) });
  assert.match(
    detailOf(() => decodeMcuResponse(bigCert)),
    /response\.cert: 513 bytes exceeds the maximum of 512/,
  );
  assert.match(
    detailOf(() => decodeMcuResponse(Uint8Array.of(0xa1))),
    /response: not one well-formed/,
  );
  assert.match(
    detailOf(() => decodeAliasCertificate(mcu.cert.subarray(0, 50))),
    /^cert: /,
  );
  assert.match(
    detailOf(() => decodeMcuEvidence(mcu.cert)),
    /ev\.challenge: expected bstr of 32 bytes, got nothing/,
  );
});

it('another version or an unknown type gets unsupported, with the request id echoed', () => {
  for (const request of [
    { v: 2, t: 'hello', req: 9 },
    { v: 1, t: 'reboot', req: 9 },
  ]) {
    const r = decodeMcuResponse(mcu.answer(encodeCbor(request)));
    assert.equal(r.t === 'error' && { code: r.code, req: r.req }, { code: 'unsupported', req: 9 });
  }
});

it('an undecodable request gets bad-request from the MCU, with what was wrong', () => {
  const r = decodeMcuResponse(mcu.answer(encodeCbor({ v: 1, t: 'evidence', req: 3 })));
  assert.is(r.t, 'error');
  if (r.t === 'error') {
    assert.is(r.code, 'bad-request');
    assert.match(r.detail ?? '', /nonce/);
  }
});

const evidenceResponse = decodeMcuResponse(answer({ t: 'evidence', req: 1, nonce }));
if (evidenceResponse.t !== 'evidence') throw new Error('the emulator did not answer evidence');
const claims: McuClaims = new Map([
  ['pump', { kind: 'evidence', idk: mcu.identityKey, cert: mcu.cert, ev: evidenceResponse.ev }],
  ['fan', { kind: 'fault', fault: 'timeout', detail: 'no answer from /dev/ttyAMA1 within 500 ms' }],
]);
const body = encodeCbor({ nonce, sw: { name: 'a', version: '1' }, mcus: writeMcuClaims(claims) });

it('the mcus claim round-trips inside a body, slots sorted; a body without it has none', () => {
  const back = decodeMcuClaims(body);
  assert.equal([...(back ?? new Map()).keys()], ['fan', 'pump']);
  assert.equal(back?.get('pump'), claims.get('pump'));
  assert.equal(back?.get('fan'), claims.get('fan'));
  assert.is(decodeMcuClaims(encodeCbor({ nonce })), undefined);
});

it('a bad mcus claim is malformed, naming the slot', () => {
  const mk = (mcus: unknown) => encodeCbor({ mcus: mcus as never });
  assert.match(
    detailOf(() => decodeMcuClaims(mk(new Map([['Pump!', {}]])))),
    /slot names .* got "Pump!"/,
  );
  assert.match(
    detailOf(() => decodeMcuClaims(mk({ pump: { fault: 'melted', detail: '' } }))),
    /body\.mcus\.pump\.fault: expected one of absent, timeout, malformed/,
  );
  assert.match(
    detailOf(() => decodeMcuClaims(mk({ pump: { idk: mcu.identityKey, cert: mcu.cert } }))),
    /body\.mcus\.pump\.ev: expected a non-empty bstr, got nothing/,
  );
  const many = Object.fromEntries(
    Array.from({ length: 17 }, (_, i) => [`m${i}`, { fault: 'absent', detail: '' }]),
  );
  assert.match(
    detailOf(() => decodeMcuClaims(mk(many))),
    /more than 16 MCUs/,
  );
});

it("the body's codec carries mcus with the device's claims; an unreadable mcus makes the body malformed", () => {
  const device = {
    nonce,
    pcrs: new Map([[14, new Uint8Array(32)]]),
    sw: { name: 'vigil-agent', version: '1' },
    logs: {},
  };
  const back = decodeClaims(encodeClaims({ ...device, mcus: claims }));
  assert.equal(back.mcus, new Map([...claims].sort(([a], [b]) => (a < b ? -1 : 1))));
  assert.is(decodeClaims(encodeClaims(device)).mcus, undefined, 'a device without MCUs carries no key');
  const broken = encodeCbor({ ...device, mcus: 7 });
  assert.match(
    detailOf(() => decodeClaims(broken)),
    /body\.mcus: expected a map, got uint 7/,
  );
});

// Fuzzing: every decoder an MCU or an agent feeds must fail only with a typed `malformed`.
const DECODERS = [
  decodeMcuRequest,
  decodeMcuResponse,
  decodeMcuClaims,
  decodeAliasCertificate,
  decodeMcuEvidence,
];
const onlyTypedErrors = (bytes: Uint8Array) => onlyTypedMalformed(DECODERS, bytes);

const VALID = [
  encodeMcuRequest({ t: 'hello', req: 1 }),
  encodeMcuRequest({ t: 'evidence', req: 2, nonce }),
  answer({ t: 'hello', req: 3 }),
  answer({ t: 'evidence', req: 4, nonce }),
  encodeMcuResponse({ t: 'error', req: 5, code: 'unsupported' }),
  mcu.cert,
  evidenceResponse.ev,
  body,
];

it('fuzz: random bytes give only typed malformed errors', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), onlyTypedErrors), { seed: SEED, numRuns: 2000 });
});

it('fuzz: mutated valid messages, certificates, evidence and bodies give only typed errors', () => {
  const mutated = mutatedBytes(VALID);
  fc.assert(fc.property(mutated, onlyTypedErrors), { seed: SEED, numRuns: 3000 });
});

it.run();
