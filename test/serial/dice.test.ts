import { createECDH } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { keyId, verifySign1 } from '../../shared/cose/sign1.ts';
import {
  attestationScalar,
  compoundDeviceIdentifier,
  decodeAliasCertificate,
  decodeMcuEvidence,
  decodeMcuRequest,
  decodeMcuResponse,
  encodeMcuRequest,
  firmwareDigest,
  identityHash,
  identityScalar,
  mcuChallenge,
  p256PublicKey,
} from '../../shared/mcu/index.ts';
import { ProtocolError } from '../../shared/protocol/errors.ts';
import { McuFirmware } from '../equipment/mcu/firmware.ts';

// The vectors of docs/serial.md §7, checked there against Python's hmac/hashlib and zlib and
// here against OpenSSL (node:crypto ECDH) for the public keys.
const it = suite('MCU DICE derivation, alias certificate and challenge');
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const UDS = Uint8Array.from({ length: 32 }, (_, i) => i);
const IMAGE = new TextEncoder().encode('vigil mcu firmware 1.0.0\n');
const NONCE = new Uint8Array(32).fill(0x11);
const V = {
  identityScalar: 'b27c8de14c8e9deb5822ed97d1d6d4bcc1dbeeab460e464873688447c2e3bc91',
  identityKey:
    '041ddcca7fcf8366d12135e95d187a80fc141a64fe6d650423a4308fcc53a9bb101700edda2cf284c409c0097463995dbdb21672636605a50784bf13e97cf496ef',
  identityHash: 'd9146ce996b55f02dc0459abcdc87584db126409f4bac2ab523171379a0f91cb',
  firmware: '52e63478c68a9d5f734938a3530da169575f9c1875eafd90b665d638ae853f6b',
  cdi: 'eceeb709df8221e6bd8ff5626f2c7d981dea9a688cf4a39e2e86f9031564f234',
  attestationScalar: 'ae8b4cae49d8391eda3513d0bc5da62c74ef555e4b2d264fe656d2e883f1d251',
  attestationKey:
    '04175d0d4c31e3a27317e91b77bb28beafaf186fcf58f0a20b01174d05bcadb65cde1a59f393ce8af65450222b1eeb7e27300cd63ab897146b18ad39d429d05882',
  challenge: '541a019dd1b8180118fd0453e50415f76451440ce0a57abf49e250daffdec02a',
  // With deterministic ECDSA (RFC 6979), as noble signs.
  cert: '844da201260448d9146ce996b55f02a0587fa3656d6f64656c6c766967696c2d656d752d6d3062616b584104175d0d4c31e3a27317e91b77bb28beafaf186fcf58f0a20b01174d05bcadb65cde1a59f393ce8af65450222b1eeb7e27300cd63ab897146b18ad39d429d05882626677582052e63478c68a9d5f734938a3530da169575f9c1875eafd90b665d638ae853f6b5840a002a3c06479626cf9a3f1e04db09170ecae5bd906da7f112cdfdb61dd200ec11bb6d8ac4966a4b010cfc2441216563a5d4e36850b9bf41dca4323c43efe537a',
  ev: '844da201260448f6abea0df61a8683a0582da1696368616c6c656e67655820541a019dd1b8180118fd0453e50415f76451440ce0a57abf49e250daffdec02a5840cece12e60c1de119ff3223b165ce10e0f1fd44b60335349c562965092ecf343909d9cbcc1afdbe5189e99c9f5a87e982278bccb2e7998f4c96555da9693d0d3a',
};

function opensslPublic(scalar: Uint8Array): string {
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(scalar);
  return ecdh.getPublicKey('hex', 'uncompressed');
}

it('derivations match the documented vectors', () => {
  const fw = firmwareDigest(IMAGE);
  assert.is(hex(identityScalar(UDS)), V.identityScalar);
  assert.is(hex(fw), V.firmware);
  assert.is(hex(compoundDeviceIdentifier(UDS, fw)), V.cdi);
  assert.is(hex(attestationScalar(UDS, fw)), V.attestationScalar);
  assert.is(opensslPublic(identityScalar(UDS)), V.identityKey);
  assert.is(opensslPublic(attestationScalar(UDS, fw)), V.attestationKey);
  assert.is(identityHash(Buffer.from(V.identityKey, 'hex')), V.identityHash);
  assert.is(hex(mcuChallenge(NONCE, Buffer.from(V.identityKey, 'hex'))), V.challenge);
});

it('the emulator (noble) derives the same keys as OpenSSL, and the documented structures', () => {
  const mcu = new McuFirmware({ secret: UDS, image: IMAGE, model: 'vigil-emu-m0' });
  assert.is(hex(mcu.identityKey), V.identityKey);
  assert.is(hex(mcu.attestationKey), V.attestationKey);
  assert.is(hex(mcu.cert), V.cert);
  const answer = decodeMcuResponse(mcu.answer(encodeMcuRequest({ t: 'evidence', req: 2, nonce: NONCE })));
  assert.is(answer.t === 'evidence' && hex(answer.ev), V.ev);
});

it('DICE layering: new firmware, same identity, another attestation key', () => {
  const a = new McuFirmware({ secret: UDS, image: IMAGE, model: 'm' });
  const b = new McuFirmware({ secret: UDS, image: new TextEncoder().encode('patched'), model: 'm' });
  const c = new McuFirmware({ secret: new Uint8Array(32).fill(9), image: IMAGE, model: 'm' });
  assert.equal(a.identityKey, b.identityKey);
  assert.not.equal(a.attestationKey, b.attestationKey);
  assert.not.equal(a.identityKey, c.identityKey);
  assert.not.equal(a.attestationKey, c.attestationKey);
});

it('the alias certificate: ES256 by the identity key over {model, ak, fw}, verified by node:crypto', () => {
  const mcu = new McuFirmware({ secret: UDS, image: IMAGE, model: 'vigil-emu-m0' });
  const cert = decodeAliasCertificate(mcu.cert);
  const idKey = p256PublicKey(mcu.identityKey, 'idk');
  assert.equal(cert.sign1.kid, keyId(idKey));
  assert.ok(verifySign1(cert.sign1, idKey));
  assert.is(cert.value.model, 'vigil-emu-m0');
  assert.equal(cert.value.ak, mcu.attestationKey);
  assert.is(hex(cert.value.fw), V.firmware);
  assert.not.ok(verifySign1(cert.sign1, p256PublicKey(mcu.attestationKey, 'ak')), 'not by the AK');
});

it('derivation inputs of the wrong size are refused, saying what is expected', () => {
  assert.throws(() => identityScalar(new Uint8Array(16)), /UDS\) must be 32 bytes, got 16/);
  assert.throws(() => compoundDeviceIdentifier(UDS, new Uint8Array(20)), /32 bytes \(SHA-256\), got 20/);
  assert.throws(() => mcuChallenge(new Uint8Array(31), UDS), /nonce is 32 bytes, got 31/);
});

it('p256PublicKey refuses what is not an uncompressed point on the curve', () => {
  const malformedDetail = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      assert.ok(e instanceof ProtocolError && e.code === 'malformed');
      return e.detail;
    }
    assert.unreachable('accepted');
  };
  assert.match(
    malformedDetail(() => p256PublicKey(new Uint8Array(33).fill(2), 'idk'))!,
    /idk: .*65 bytes.*got 33/,
  );
  const offCurve = Buffer.from(V.identityKey, 'hex');
  offCurve[64]! ^= 1;
  assert.match(malformedDetail(() => p256PublicKey(offCurve, 'idk'))!, /not a point on P-256/);
});

it('evidence: ES256 by the attestation key over the challenge (request bytes of docs/serial.md §7)', () => {
  const mcu = new McuFirmware({ secret: UDS, image: IMAGE, model: 'm' });
  const request = new Uint8Array(
    Buffer.from(`a461760161746865766964656e63656372657102656e6f6e63655820${'11'.repeat(32)}`, 'hex'),
  );
  assert.equal(decodeMcuRequest(request), { t: 'evidence', req: 2, nonce: NONCE });
  const answer = decodeMcuResponse(mcu.answer(request));
  if (answer.t !== 'evidence') return assert.unreachable(`answered ${answer.t}`);
  assert.is(answer.req, 2);
  const ev = decodeMcuEvidence(answer.ev);
  assert.is(hex(ev.value.challenge), V.challenge);
  assert.ok(verifySign1(ev.sign1, p256PublicKey(mcu.attestationKey, 'ak')));
  assert.equal(ev.sign1.kid, keyId(p256PublicKey(mcu.attestationKey, 'ak')));
});

it.run();
