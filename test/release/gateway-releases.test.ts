import { execFile } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { checkFloor } from '../../gateway/releases/floor.ts';
import { ImportConflictError, importBundle, importVerdict } from '../../gateway/releases/import.ts';
import { RELEASE_KEYS_DIR } from '../../gateway/releases/keys.ts';
import { packRelease } from '../../gateway/releases/pack.ts';
import { initGateway } from '../../gateway/setup/init.ts';
import { SqliteStore } from '../../gateway/store/sqlite.ts';
import { keyId } from '../../shared/cose/sign1.ts';
import type { ReleaseError } from '../../shared/protocol/release-manifest.ts';
import { buildManifest, formatManifest, manifestDigest } from '../../shared/protocol/software-manifest.ts';
import { toHex } from '../../shared/tpm/bytes.ts';
import { startTestGateway } from '../support/gateway.ts';
import { removeDir, tempDir } from '../support/tmp.ts';
import { releaseKey, writeTree } from './support.ts';

// Releases on the gateway side, as an operator and a build pipeline use them: keygen, pack and
// verify with no gateway at all, import into a gateway directory (stopped, then running), and
// what each refuses.

const run = promisify(execFile);
const CLI = join(import.meta.dirname, '../../gateway/cli.ts');
const gw = (args: string[]) =>
  run(process.execPath, ['--import', 'tsx', CLI, ...args], { env: { ...process.env, NO_COLOR: '1' } });
async function fails(args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    await gw(args);
  } catch (e) {
    return e as { code: number; stderr: string };
  }
  throw new Error(`vigil-gateway ${args.join(' ')} succeeded; expected a failure`);
}

const ctx: { dir: string } = { dir: '' };
const it = suite('gateway releases', ctx);
it.before(() => {
  ctx.dir = tempDir('releases');
});
it.after(() => removeDir(ctx.dir));

const TREE = {
  'bin/app': { data: '#!/bin/sh\necho v2\n', exec: true as const },
  'lib/a.js': 'export const a = 1;\n',
};

it('keygen, pack and verify from the command line, with no gateway; a build reproduces its bundle', async () => {
  const key = join(ctx.dir, 'release.key');
  const keygen = await gw(['release', 'keygen', '--out', key]);
  assert.is(fs.statSync(key).mode & 0o777, 0o600, 'the private key is 0600');
  const pub = createPublicKey(keygen.stdout);
  assert.match(keygen.stderr, `kid ${toHex(keyId(pub))}`);
  fs.writeFileSync(join(ctx.dir, 'release.pub'), keygen.stdout);
  assert.match((await fails(['release', 'keygen', '--out', key])).stderr, 'never overwritten');

  const tree = join(ctx.dir, 'tree');
  writeTree(tree, TREE);
  const out = join(ctx.dir, 'app-2.vigil');
  const packArgs = [
    'release',
    'pack',
    '--key',
    key,
    '--name',
    'app',
    '--version',
    '2.0.0',
    '--seq',
    '2',
    '--tree',
    tree,
  ];
  const packed = JSON.parse(
    (await gw([...packArgs, '--out', out, '--health-window', '30s', '--json'])).stdout,
  );
  const measured = toHex(
    manifestDigest(formatManifest(buildManifest(fs, tree, { name: 'app', version: '2.0.0' }))),
  );
  assert.is(
    packed.digest,
    measured,
    'the digest is the software manifest of the tree, as the agent measures it',
  );
  assert.is(packed.healthWindowMs, 30_000);
  const listing = await run('tar', ['-tvf', out]);
  assert.match(listing.stdout, /release\.cose\n.*release\.tar\n$/s);

  const verified = await gw(['release', 'verify', out, '--pubkey', join(ctx.dir, 'release.pub')]);
  assert.match(verified.stdout, `digest    ${measured}`);
  assert.match(verified.stdout, /OK: signature, artifact and tree check out/);

  const again = join(ctx.dir, 'again.vigil');
  await gw([...packArgs, '--out', again, '--health-window', '30s']);
  assert.equal(
    fs.readFileSync(again),
    fs.readFileSync(out),
    'the same tree and key give the same bundle, byte for byte',
  );
});

it('verify refuses a stranger key and a changed artifact byte, exit 1', async () => {
  const bundle = join(ctx.dir, 'app-2.vigil');
  const other = releaseKey();
  fs.writeFileSync(join(ctx.dir, 'other.pub'), other.publicKey.export({ format: 'pem', type: 'spki' }));
  const stranger = await fails(['release', 'verify', bundle, '--pubkey', join(ctx.dir, 'other.pub')]);
  assert.is(stranger.code, 1);
  assert.match(stranger.stderr, 'release-key-unknown');
  const bytes = fs.readFileSync(bundle);
  bytes[bytes.indexOf('export const a')]! ^= 0x20; // one letter of a file inside release.tar
  const tampered = join(ctx.dir, 'tampered.vigil');
  fs.writeFileSync(tampered, bytes);
  const t = await fails(['release', 'verify', tampered, '--pubkey', join(ctx.dir, 'release.pub')]);
  assert.is(t.code, 1);
  assert.match(t.stderr, /artifact-invalid: the artifact's SHA-256 is [0-9a-f]{64}, the manifest says/);
});

async function packed(name: string, version: string, seq: number, opts: { expires?: number } = {}) {
  const key = fs.readFileSync(join(ctx.dir, 'release.key'));
  const { createPrivateKey } = await import('node:crypto');
  const tree = join(ctx.dir, `tree-${version}`);
  writeTree(tree, { ...TREE, VERSION: version });
  const out = join(ctx.dir, `${name}-${version}-${seq}.vigil`);
  await packRelease({ key: createPrivateKey(key), name, version, seq, tree, out, ...opts });
  return out;
}

it('import into a stopped gateway: checked against DIR/release-keys, artifact kept, store and reference value', async () => {
  const dir = join(ctx.dir, 'gw');
  initGateway({ dir, hosts: ['localhost'] });
  const bundle = join(ctx.dir, 'app-2.vigil');
  assert.match(
    (await fails(['release', 'import', bundle, '--dir', dir])).stderr,
    `no release keys in ${dir}/release-keys`,
  );
  fs.mkdirSync(join(dir, RELEASE_KEYS_DIR));
  fs.copyFileSync(join(ctx.dir, 'release.pub'), join(dir, RELEASE_KEYS_DIR, 'build.pem'));
  const imported = JSON.parse((await gw(['release', 'import', bundle, '--dir', dir, '--json'])).stdout);
  assert.is(imported.already, false);
  assert.match(imported.registered, 'not running');
  assert.equal(fs.readFileSync(join(dir, imported.artifactPath)).toString('hex').length > 0, true);
  const store = new SqliteStore(join(dir, 'vigil.db'));
  try {
    const [m] = await store.releaseManifests('app');
    assert.equal(
      [m?.name, m?.version, m?.seq, m?.digest, m?.kid],
      ['app', '2.0.0', 2, imported.digest, imported.kid],
    );
    assert.is(m?.artifact.path, `artifacts/${imported.artifact.sha256}.tar`);
    assert.equal(
      (await store.releases()).map((r) => [r.name, r.version, r.digest]),
      [['app', '2.0.0', imported.digest]],
    );
    // Again: no change, the reference value registered again.
    const again = await importBundle({ dir, bundle, store, now: Date.now() });
    assert.ok(again.already);
    // Another release claiming seq 2 of app: refused, and nothing of it stays.
    const clash = await packed('app', '2.0.1', 2);
    await importBundle({ dir, bundle: clash, store, now: Date.now() }).then(
      () => assert.unreachable('a second release under seq 2 was imported'),
      (e: Error) => {
        assert.instance(e, ImportConflictError);
        assert.match(e.message, 'seq 2');
      },
    );
    const expired = await packed('app', '3.0.0', 3, { expires: Date.now() + 1000 });
    await importBundle({ dir, bundle: expired, store, now: Date.now() + 2000 }).then(
      () => assert.unreachable('an expired release was imported'),
      (e: Error) => assert.is((e as ReleaseError).code, 'expired'),
    );
    assert.equal(
      fs.readdirSync(join(dir, 'artifacts')),
      [`${imported.artifact.sha256}.tar`],
      'no partial artifact left',
    );
    assert.is((await store.releaseManifests()).length, 1);
  } finally {
    store.closeNow();
  }
});

it('import next to a running gateway registers the reference value with it; list shows the seq', async () => {
  const g = await startTestGateway();
  try {
    fs.mkdirSync(join(g.dir, RELEASE_KEYS_DIR));
    fs.copyFileSync(join(ctx.dir, 'release.pub'), join(g.dir, RELEASE_KEYS_DIR, 'build.pem'));
    const out = await gw(['release', 'import', join(ctx.dir, 'app-2.vigil'), '--dir', g.dir]);
    assert.match(out.stdout, 'registered with the running gateway');
    const list = await gw(['release', 'list', '--dir', g.dir]);
    assert.match(list.stdout, /NAME +VERSION +SEQ +DIGEST/);
    assert.match(list.stdout, /app +2\.0\.0 +2 +[0-9a-f]{64}/);
    const digest = /app +2\.0\.0 +2 +([0-9a-f]{64})/.exec(list.stdout)![1]!;
    assert.ok(
      g.gateway.policy().reference.allowsSoftware('app', '2.0.0', Buffer.from(digest, 'hex')),
      'the running gateway appraises with it from its next round',
    );
  } finally {
    await g.stop();
  }
});

it('pure rules: the swarm floor, and what an import may not contradict', () => {
  assert.equal(checkFloor({ name: 'app', seq: 3, floor: undefined, force: false }), {
    ok: true,
    forced: false,
  });
  assert.equal(checkFloor({ name: 'app', seq: 3, floor: 2, force: false }), { ok: true, forced: false });
  const refused = checkFloor({ name: 'app', seq: 2, floor: 2, force: false });
  assert.ok(
    !refused.ok &&
      refused.code === 'rollback-refused' &&
      /not above the swarm's committed floor 2/.test(refused.detail),
  );
  assert.equal(checkFloor({ name: 'app', seq: 1, floor: 2, force: true }), { ok: true, forced: true });
  const signed = {
    manifest: { name: 'app', version: '2', seq: 2, digest: new Uint8Array(32).fill(1) },
    bytes: new Uint8Array([1]),
  };
  const record = {
    name: 'app',
    version: '2',
    seq: 2,
    digest: '01'.repeat(32),
    kid: '00',
    manifest: new Uint8Array([1]),
    artifact: { sha256: '', size: 0, path: '' },
    importedAt: 0,
  };
  assert.is(importVerdict(signed as never, [record], []).kind, 'same');
  assert.is(
    importVerdict(signed as never, [{ ...record, manifest: new Uint8Array([2]) }], []).kind,
    'conflict',
  );
  assert.is(
    importVerdict(signed as never, [{ ...record, seq: 1 }], []).kind,
    'conflict',
    'the same version under another seq',
  );
  assert.is(
    importVerdict(signed as never, [], [{ name: 'app', version: '2', digest: 'ff'.repeat(32), addedAt: 0 }])
      .kind,
    'conflict',
  );
  assert.is(importVerdict(signed as never, [{ ...record, name: 'other' }], []).kind, 'new');
});

it.run();
