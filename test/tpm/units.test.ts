import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { deviceOpenHint } from '../../firmware-shims/tpm/device-transport.ts';
import { parseTcti } from '../../firmware-shims/tpm/tcti.ts';
import { fromHex, Reader, toHex, Writer } from '../../shared/tpm/bytes.ts';
import { TpmFormatError } from '../../shared/tpm/errors.ts';
import { kdfa, kdfe } from '../../shared/tpm/kdf.ts';
import { objectName } from '../../shared/tpm/name.ts';
import { marshalPcrSelection, type PcrSelection, parsePcrSelection } from '../../shared/tpm/pcr-selection.ts';
import { marshalPublic, parsePublic, publicKey } from '../../shared/tpm/public.ts';
import { rcName } from '../../shared/tpm/rc.ts';
import { marshalSignature, parseSignature, type TpmSignature } from '../../shared/tpm/signature.ts';
import { AK_TEMPLATE, ekTemplate, matchesTemplate } from '../../shared/tpm/templates.ts';

test('rcName decodes format-zero, warning and format-one codes', () => {
  assert.is(rcName(0x922), 'TPM_RC_RETRY (0x922)');
  assert.is(rcName(0x000), 'TPM_RC_SUCCESS (0x0)');
  assert.is(rcName(0x100), 'TPM_RC_INITIALIZE (0x100)');
  assert.is(rcName(0x101), 'TPM_RC_FAILURE (0x101)');
  assert.is(rcName(0x14c), 'TPM_RC_NV_DEFINED (0x14c)');
  assert.is(rcName(0x902), 'TPM_RC_OBJECT_MEMORY (0x902)');
  assert.is(rcName(0x90a), 'TPM_RC_TESTING (0x90a)');
  assert.is(rcName(0x910), 'TPM_RC_REFERENCE_H0 (0x910)');
  assert.is(rcName(0x919), 'TPM_RC_REFERENCE_S1 (0x919)');
  assert.is(rcName(0x1c4), 'TPM_RC_VALUE (0x1c4): parameter 1');
  assert.is(rcName(0x2d5), 'TPM_RC_SIZE (0x2d5): parameter 2');
  assert.is(rcName(0x18b), 'TPM_RC_HANDLE (0x18b): handle 1');
  assert.is(rcName(0x98e), 'TPM_RC_AUTH_FAIL (0x98e): session 1');
  assert.is(rcName(0x9a2), 'TPM_RC_BAD_AUTH (0x9a2): session 1');
  assert.is(rcName(0x1df), 'TPM_RC_INTEGRITY (0x1df): parameter 1');
  assert.is(rcName(0x01e), 'TPM 1.2 response code (0x1e)');
  assert.is(rcName(0x500), 'vendor-specific response code (0x500)');
});

// Vectors from OpenSSL 3's KBKDF (HMAC, counter mode, with separator and L) and SSKDF, whose
// inputs are laid out exactly as TPM 2.0 Part 1 §11.4.10 lays out KDFa and KDFe.
test('KDFa matches OpenSSL KBKDF', () => {
  const key = fromHex('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');
  const name = fromHex(`000b${'11'.repeat(32)}`);
  assert.is(
    toHex(kdfa('sha256', key, 'STORAGE', name, new Uint8Array(0), 320)),
    'afb4db5dff10b0753d4e4739ea2278184eb550f81b74ef5586af27fc52947d8c324c8ff0f0b7fdef',
  );
  assert.is(
    toHex(kdfa('sha256', fromHex('00112233'), 'INTEGRITY', new Uint8Array(0), new Uint8Array(0), 128)),
    '6bc7b9f0ca65e0748e35ecb733cc3051',
  );
});

test('KDFe matches OpenSSL SSKDF', () => {
  const z = fromHex('0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef');
  const u = fromHex('aa'.repeat(32));
  const v = fromHex('bb'.repeat(32));
  assert.is(
    toHex(kdfe('sha256', z, 'IDENTITY', u, v, 256)),
    '569f9bddbcb24a682356c149a3ac1ff4c98dc054143fbe1927b61af7db11d2f5',
  );
  assert.is(
    toHex(kdfe('sha256', fromHex('ff'), 'IDENTITY', new Uint8Array(0), new Uint8Array(0), 384)),
    '9be0427fa89de5e3d008899a97286db6b2b833197351a90ff487dcaafb5691d2c5a5f0ec93b7e1073eadb19907fcafb4',
  );
});

test('Reader and Writer round-trip and refuse short or trailing input', () => {
  const bytes = new Writer()
    .u8(1)
    .u16(0x203)
    .u32(0x4050607)
    .u64(0x08090a0b0c0d0e0fn)
    .tpm2b(fromHex('aabb'))
    .finish();
  assert.is(toHex(bytes), '01020304050607' + '08090a0b0c0d0e0f' + '0002aabb');
  const r = new Reader(bytes, 'T');
  assert.is(r.u8(), 1);
  assert.is(r.u16(), 0x203);
  assert.is(r.u32(), 0x4050607);
  assert.is(r.u64(), 0x08090a0b0c0d0e0fn);
  assert.is(toHex(r.tpm2b()), 'aabb');
  r.end();
  assert.throws(
    () => new Reader(fromHex('0005aa'), 'T').tpm2b(),
    (e: unknown) => e instanceof TpmFormatError,
  );
  assert.throws(
    () => new Reader(fromHex('00'), 'T').end(),
    (e: unknown) => e instanceof TpmFormatError && e.reason === 'trailing',
  );
});

test('TPMT_PUBLIC templates round-trip and give keys', () => {
  for (const p of [ekTemplate('ecc'), ekTemplate('rsa'), AK_TEMPLATE]) {
    const bytes = marshalPublic(p);
    assert.equal(marshalPublic(parsePublic(bytes)), bytes);
    assert.ok(matchesTemplate(parsePublic(bytes), p));
    assert.is(objectName(bytes).length, 34);
  }
  // The L-2 template as tpm2_createek sends it (tpm2-tools 5.4, unique zero-filled).
  assert.is(
    toHex(marshalPublic(ekTemplate('ecc'))),
    '0023000b000300b20020837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa' +
      '00060080004300100003001000200000000000000000000000000000000000000000000000000000000000000000' +
      '00200000000000000000000000000000000000000000000000000000000000000000',
  );
  assert.not.ok(matchesTemplate(ekTemplate('ecc'), AK_TEMPLATE));
  assert.throws(
    () => publicKey(ekTemplate('ecc')),
    (e: unknown) => e instanceof TpmFormatError,
  );
});

test('TPML_PCR_SELECTION round-trips; at least 3 select bytes', () => {
  const sel: PcrSelection = [
    { hash: 'sha256', pcrs: [0, 7, 8, 23] },
    { hash: 'sha1', pcrs: [] },
  ];
  const bytes = marshalPcrSelection(sel);
  assert.is(toHex(bytes), '00000002' + '000b03810180' + '000403000000');
  const r = new Reader(bytes);
  assert.equal(parsePcrSelection(r), sel);
  r.end();
  assert.is(toHex(marshalPcrSelection([{ hash: 'sha256', pcrs: [30] }])), '00000001000b0400000040');
});

test('TPMT_SIGNATURE round-trips', () => {
  const sigs: TpmSignature[] = [
    { type: 'ecdsa', hash: 'sha256', r: fromHex('01'.repeat(32)), s: fromHex('02'.repeat(31)) },
    { type: 'rsassa', hash: 'sha256', sig: fromHex('03'.repeat(256)) },
  ];
  for (const s of sigs) assert.equal(parseSignature(marshalSignature(s)), s);
});

test('TCTI strings parse as tpm2-tools reads them; unknown ones list the accepted forms', () => {
  assert.equal(parseTcti('device'), { kind: 'device', path: '/dev/tpmrm0' });
  assert.equal(parseTcti('device:/dev/tpm0'), { kind: 'device', path: '/dev/tpm0' });
  assert.equal(parseTcti('swtpm:host=127.0.0.1,port=2321'), { kind: 'swtpm', host: '127.0.0.1', port: 2321 });
  assert.equal(parseTcti('swtpm:port=4000'), { kind: 'swtpm', host: '127.0.0.1', port: 4000 });
  assert.throws(() => parseTcti('mssim:host=x'), /accepted forms: device/);
  assert.throws(() => parseTcti('swtpm:port=99999'), /1\.\.65535/);
  assert.throws(() => parseTcti('swtpm:colour=red'), /unknown key/);
});

test('device errors say what to do', () => {
  assert.match(
    deviceOpenHint('/dev/tpmrm0', Object.assign(new Error('x'), { code: 'ENOENT' })),
    'dtoverlay=tpm-slb9670',
  );
  assert.match(deviceOpenHint('/dev/tpmrm0', Object.assign(new Error('x'), { code: 'EACCES' })), 'group tss');
});

test.run();
