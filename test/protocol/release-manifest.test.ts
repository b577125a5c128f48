import { generateKeyPairSync } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeCbor } from '../../shared/cbor/encode.ts';
import { decodeSign1, signSign1 } from '../../shared/cose/sign1.ts';
import {
  checkNotExpired,
  decodeReleasePayload,
  encodeReleasePayload,
  openRelease,
  parseReleaseKey,
  ReleaseError,
  ReleaseKeyError,
  type ReleaseManifest,
  signRelease,
  trustedKey,
} from '../../shared/protocol/release-manifest.ts';
import { toHex } from '../../shared/tpm/bytes.ts';

// The release manifest of PROTOCOL.md §6.1: its payload's fields and checks, its signature by a
// trusted key (Ed25519 and ES256), and the code each refusal carries.

const it = suite('release manifest');

const ed = generateKeyPairSync('ed25519');
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const stranger = generateKeyPairSync('ed25519');
const trusted = [trustedKey(ed.publicKey), trustedKey(ec.publicKey)];

const fill = (n: number, b: number) => new Uint8Array(n).fill(b);
const manifest: ReleaseManifest = {
  name: 'app',
  version: '2.0.0',
  seq: 7,
  digest: fill(32, 0xd1),
  artifact: { size: 10240, sha256: fill(32, 0xa5), format: 'tar' },
  expires: 1_900_000_000_000,
  health: { windowMs: 30_000 },
};

function refused(run: () => unknown, code: string, ...fragments: string[]): void {
  try {
    run();
  } catch (e) {
    assert.instance(e, ReleaseError, String(e));
    assert.is((e as ReleaseError).code, code, (e as Error).message);
    for (const f of fragments) assert.match((e as Error).message, f);
    return;
  }
  assert.unreachable('accepted');
}

it('Ed25519 and ES256: signed, opened with the signer named by kid, payload round-trips', () => {
  for (const key of [ed.privateKey, ec.privateKey]) {
    const bytes = signRelease(key, manifest);
    const r = openRelease(bytes, trusted);
    assert.equal(r.manifest, manifest);
    assert.equal(r.bytes, bytes);
    assert.equal(r.kid, decodeSign1(bytes).kid);
  }
  const { expires: _, health: __, ...bare } = manifest;
  assert.equal(
    openRelease(signRelease(ed.privateKey, bare), trusted).manifest,
    bare,
    'expires and health are optional',
  );
});

it('signed by a key not trusted here: release-key-unknown, naming the kid', () => {
  const bytes = signRelease(stranger.privateKey, manifest);
  refused(
    () => openRelease(bytes, trusted),
    'release-key-unknown',
    toHex(trustedKey(stranger.publicKey).kid),
    'not among the 2',
  );
  refused(() => openRelease(bytes, []), 'release-key-unknown');
});

it('a changed payload, a kid claiming a trusted key, or another COSE form: manifest-invalid', () => {
  const bytes = signRelease(ed.privateKey, manifest);
  const msg = decodeSign1(bytes);
  const forged = encodeCbor([
    msg.protectedBytes,
    new Map(),
    encodeReleasePayload({ ...manifest, seq: 8 }),
    msg.signature,
  ]);
  refused(() => openRelease(forged, trusted), 'manifest-invalid', 'does not verify');
  // A stranger's signature under a trusted key's kid.
  const claimed = signSign1(
    stranger.privateKey,
    encodeReleasePayload(manifest),
    trustedKey(ed.publicKey).kid,
  );
  refused(() => openRelease(claimed, trusted), 'manifest-invalid', 'does not verify');
  refused(() => openRelease(new Uint8Array([0x80]), trusted), 'manifest-invalid', 'COSE_Sign1');
  refused(() => openRelease(new Uint8Array(16 * 1024 + 1), trusted), 'manifest-invalid', 'over the');
});

it('every payload field is checked and named', () => {
  const base = {
    name: 'app',
    version: '1',
    seq: 1,
    digest: fill(32, 1),
    artifact: { size: 1, sha256: fill(32, 2), format: 'tar' },
  };
  const cases: [Record<string, unknown>, string][] = [
    [{ ...base, name: 'two words' }, 'release manifest name'],
    [{ ...base, version: '' }, 'release manifest version'],
    [{ ...base, seq: -1 }, 'release.seq'],
    [{ ...base, digest: fill(31, 1) }, 'release.digest'],
    [{ ...base, artifact: { ...base.artifact, format: 'zip' } }, 'release.artifact.format'],
    [{ ...base, artifact: { ...base.artifact, sha256: fill(20, 1) } }, 'release.artifact.sha256'],
    [{ ...base, artifact: { size: 1, format: 'tar' } }, 'release.artifact.sha256'],
    [{ ...base, health: { windowMs: 24 * 3600 * 1000 + 1 } }, 'release.health.windowMs'],
    [{ ...base, expires: 'soon' }, 'release.expires'],
  ];
  assert.ok(decodeReleasePayload(encodeCbor(base as never)));
  for (const [payload, named] of cases)
    refused(() => decodeReleasePayload(encodeCbor(payload as never)), 'manifest-invalid', named);
  // And a signer refuses to sign what no device would accept.
  refused(() => signRelease(ed.privateKey, { ...manifest, name: 'a b' }), 'manifest-invalid');
});

it('expires: refused from its instant on, with the time named', () => {
  checkNotExpired(manifest, manifest.expires! - 1);
  refused(
    () => checkNotExpired(manifest, manifest.expires!),
    'expired',
    new Date(manifest.expires!).toISOString(),
  );
});

it('release keys from PEM or DER; an RSA key or garbage is refused with its source', () => {
  const pem = ed.publicKey.export({ format: 'pem', type: 'spki' }).toString();
  const der = new Uint8Array(ec.publicKey.export({ format: 'der', type: 'spki' }));
  assert.equal(parseReleaseKey(pem, 'a.pem').kid, trustedKey(ed.publicKey).kid);
  assert.equal(parseReleaseKey(der, 'b').kid, trustedKey(ec.publicKey).kid);
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({
    format: 'pem',
    type: 'spki',
  });
  assert.throws(
    () => parseReleaseKey(rsa.toString(), 'rsa.pem'),
    (e: Error) => e instanceof ReleaseKeyError && /rsa\.pem.*Ed25519/.test(e.message),
  );
  assert.throws(
    () => parseReleaseKey('not a key', 'x.pem'),
    (e: Error) => e instanceof ReleaseKeyError && /x\.pem: not a public key/.test(e.message),
  );
});

it.run();
