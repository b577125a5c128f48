import { constants, createECDH, generateKeyPairSync, privateDecrypt, randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Reader, toHex, Writer } from '../../shared/tpm/bytes.ts';
import { TpmFormatError } from '../../shared/tpm/errors.ts';
import { kdfe } from '../../shared/tpm/kdf.ts';
import { decryptFirstParameter, encryptFirstParameter } from '../../shared/tpm/parameter-encryption.ts';
import type { TpmPublic } from '../../shared/tpm/public.ts';
import { shareSecret } from '../../shared/tpm/secret-sharing.ts';
import {
  responseHmac,
  rpHash,
  sessionKey,
  sessionValue,
  trimAuthValue,
} from '../../shared/tpm/session-auth.ts';
import { ekTemplate } from '../../shared/tpm/templates.ts';

// The pure half of the bus session. Whether our HMACs, keys and ciphertexts are the TPM's is
// shown against swtpm (bus-session.test.ts: it accepts our commands and we verify and decrypt its
// answers); here, what the TPM's side of the salt does, computed with the private key.

const isFormatError = (e: unknown): e is TpmFormatError => e instanceof TpmFormatError;
const b64 = (s: string | undefined): Uint8Array => new Uint8Array(Buffer.from(s ?? '', 'base64url'));

test('an RSA salt: the key holder recovers it with OAEP and the label SECRET, not IDENTITY', () => {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const n = b64(publicKey.export({ format: 'jwk' }).n);
  const key: TpmPublic = { ...ekTemplate('rsa'), unique: { n } } as TpmPublic;
  const { seed, secret } = shareSecret(key, 'SECRET');
  assert.is(seed.length, 32);
  const decrypt = (label: string) =>
    privateDecrypt(
      {
        key: privateKey,
        padding: constants.RSA_PKCS1_OAEP_PADDING,
        oaepHash: 'sha256',
        oaepLabel: Buffer.from(label),
      },
      secret,
    );
  assert.is(toHex(decrypt('SECRET\0')), toHex(seed));
  assert.throws(() => decrypt('IDENTITY\0'));
});

test('an ECC salt: the key holder derives it from the ephemeral point with KDFe(SECRET)', () => {
  const holder = createECDH('prime256v1');
  holder.generateKeys();
  const point = holder.getPublicKey();
  const key: TpmPublic = {
    ...ekTemplate('ecc'),
    unique: { x: point.subarray(1, 33), y: point.subarray(33) },
  } as TpmPublic;
  const { seed, secret } = shareSecret(key, 'SECRET');
  const r = new Reader(secret, 'TPMS_ECC_POINT');
  const ex = r.tpm2b('x');
  const ey = r.tpm2b('y');
  r.end();
  const z = holder.computeSecret(Buffer.concat([Buffer.from([4]), ex, ey]));
  assert.is(toHex(kdfe('sha256', z, 'SECRET', ex, point.subarray(1, 33), 256)), toHex(seed));
  assert.is.not(toHex(kdfe('sha256', z, 'IDENTITY', ex, point.subarray(1, 33), 256)), toHex(seed));
  // A fresh ephemeral key each time: two salts to the same key differ.
  assert.is.not(toHex(shareSecret(key, 'SECRET').seed), toHex(seed));
});

test('a key that is not on its curve is refused with the field named', () => {
  const key = {
    ...ekTemplate('ecc'),
    unique: { x: new Uint8Array(32).fill(1), y: new Uint8Array(32).fill(2) },
  };
  assert.throws(
    () => shareSecret(key as TpmPublic, 'SECRET'),
    (e: unknown) =>
      isFormatError(e) && /TPMT_PUBLIC\.unique: the key's point is not on P-256/.test(e.message),
  );
});

test('no salt and no bind: no session key; authValues lose their trailing zeros', () => {
  assert.is(sessionKey('sha256', new Uint8Array(0), randomBytes(32), randomBytes(32)).length, 0);
  assert.is(sessionKey('sha256', randomBytes(32), randomBytes(32), randomBytes(32)).length, 32);
  assert.is(toHex(trimAuthValue(Uint8Array.of(1, 0, 2, 0, 0))), '010002');
  assert.is(toHex(sessionValue(Uint8Array.of(9), Uint8Array.of(0, 0))), '09');
});

test('parameter encryption changes only the first TPM2B data, and decrypts back', () => {
  const parameters = new Writer().tpm2b(randomBytes(45)).u32(0xdeadbeef).tpm2b(randomBytes(8)).finish();
  const c = {
    hash: 'sha256' as const,
    key: randomBytes(32),
    nonceNewer: randomBytes(32),
    nonceOlder: randomBytes(32),
  };
  const sealed = encryptFirstParameter(c, parameters);
  assert.is(sealed.length, parameters.length);
  assert.is(toHex(sealed.subarray(0, 2)), toHex(parameters.subarray(0, 2)), 'the size stays in the clear');
  assert.is.not(toHex(sealed.subarray(2, 47)), toHex(parameters.subarray(2, 47)));
  assert.is(toHex(sealed.subarray(47)), toHex(parameters.subarray(47)), 'later parameters untouched');
  assert.is(toHex(decryptFirstParameter(c, sealed)), toHex(parameters));
  // The other direction's nonce order (the response's) gives another key stream.
  const swapped = { ...c, nonceNewer: c.nonceOlder, nonceOlder: c.nonceNewer };
  assert.is.not(toHex(decryptFirstParameter(swapped, sealed)), toHex(parameters));
});

test('parameter encryption refuses an area without a whole first TPM2B', () => {
  const c = {
    hash: 'sha256' as const,
    key: randomBytes(32),
    nonceNewer: randomBytes(16),
    nonceOlder: randomBytes(16),
  };
  for (const bad of [new Uint8Array(0), Uint8Array.of(0), Uint8Array.of(0, 5, 1, 2)]) {
    assert.throws(() => decryptFirstParameter(c, bad), isFormatError);
    assert.throws(() => encryptFirstParameter(c, bad), isFormatError);
  }
});

test('a response HMAC binds the parameters, the code, both nonces and the attributes', () => {
  const key = randomBytes(32);
  const params = randomBytes(40);
  const tpmNonce = randomBytes(32);
  const callerNonce = randomBytes(32);
  const good = toHex(responseHmac('sha256', key, rpHash('sha256', 0x158, params), tpmNonce, callerNonce, 1));
  const variants = [
    responseHmac('sha256', key, rpHash('sha256', 0x17e, params), tpmNonce, callerNonce, 1),
    responseHmac('sha256', key, rpHash('sha256', 0x158, params.subarray(1)), tpmNonce, callerNonce, 1),
    responseHmac('sha256', key, rpHash('sha256', 0x158, params), callerNonce, tpmNonce, 1),
    responseHmac('sha256', key, rpHash('sha256', 0x158, params), randomBytes(32), callerNonce, 1),
    responseHmac('sha256', key, rpHash('sha256', 0x158, params), tpmNonce, callerNonce, 0x41),
  ];
  for (const v of variants) assert.is.not(toHex(v), good);
});

test.run();
