import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, configJson, parseConfig } from '../../device/config.ts';
import { parseUpdateConfig, UpdateConfigError } from '../../device/update/config.ts';
import { keyId } from '../../shared/cose/sign1.ts';
import { toHex } from '../../shared/tpm/bytes.ts';
import { type Swtpm, startSwtpm } from '../support/swtpm.ts';
import { testPki } from '../support/tls-pair.ts';
import { removeDir, tempDir } from '../support/tmp.ts';

// What a device trusts and runs for updates: release keys pinned in agent.json by `init
// --release-key`, and update.json, each refused field named.

const run = promisify(execFile);
const ctx: { dir: string; swtpm?: Swtpm } = { dir: '' };
const it = suite('agent release keys and update config', ctx);
it.before(() => {
  ctx.dir = tempDir('agent-keys');
});
it.after(async () => {
  await ctx.swtpm?.stop();
  removeDir(ctx.dir);
});

const ed = generateKeyPairSync('ed25519').publicKey;
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
const spki = (k: typeof ed) => k.export({ format: 'der', type: 'spki' }).toString('base64');
const minimal = { version: 1, gateway: 'mqtts://gw.example', ca: 'ca.pem', tpm: 'device:/dev/tpmrm0' };

it('pinned keys read back as written, with their kid checked', () => {
  const keys = [
    { kid: toHex(keyId(ed)), key: spki(ed) },
    { kid: toHex(keyId(ec)), key: spki(ec) },
  ];
  const c = parseConfig({ ...minimal, releaseKeys: keys }, '/d');
  assert.equal(
    c.releaseKeys?.map((k) => toHex(k.kid)),
    keys.map((k) => k.kid),
  );
  assert.equal(configJson(c).releaseKeys, keys);
  assert.is(parseConfig(minimal, '/d').releaseKeys, undefined, 'none pinned: no release is ever staged');
  const refused: [unknown, string][] = [
    [
      { kid: '00'.repeat(8), key: spki(ed) },
      `"releaseKeys[0]".kid is ${'00'.repeat(8)} but its key's id is ${toHex(keyId(ed))}`,
    ],
    [{ kid: 'aa', key: 'bm90IGEga2V5' }, '"releaseKeys[0]".key: not a public key'],
    [{ key: spki(ed) }, '"releaseKeys[0]" must be {"kid": HEX, "key": BASE64 SPKI}'],
  ];
  for (const [entry, message] of refused)
    assert.throws(
      () => parseConfig({ ...minimal, releaseKeys: [entry] }, '/d', 'agent.json'),
      (e: Error) => e instanceof ConfigError && e.message.includes(message),
      message,
    );
  assert.throws(() => parseConfig({ ...minimal, releaseKeys: 'x' }, '/d'), /"releaseKeys" must be a list/);
});

it('vigil-agent init --release-key (repeatable) pins each key; an RSA key is refused', async () => {
  ctx.swtpm = await startSwtpm();
  const ca = join(ctx.dir, 'ca.pem');
  writeFileSync(ca, testPki().ca);
  const files = [ed, ec].map((k, i) => {
    const f = join(ctx.dir, `release-${i}.pub`);
    writeFileSync(f, k.export({ format: 'pem', type: 'spki' }));
    return f;
  });
  const dir = join(ctx.dir, 'agent');
  const init = (...extra: string[]) =>
    run(process.execPath, [
      '--import',
      'tsx',
      join(import.meta.dirname, '../../device/cli.ts'),
      'init',
      '--gateway',
      'mqtts://localhost:8883',
      '--ca',
      ca,
      '--tpm',
      ctx.swtpm!.tcti,
      '--dir',
      dir,
      '--json',
      ...extra,
    ]);
  const out = JSON.parse((await init('--release-key', files[0]!, '--release-key', files[1]!)).stdout);
  assert.equal(out.releaseKeys, [toHex(keyId(ed)), toHex(keyId(ec))]);
  const written = JSON.parse(readFileSync(join(dir, 'agent.json'), 'utf8'));
  assert.equal(written.releaseKeys, [
    { kid: toHex(keyId(ed)), key: spki(ed) },
    { kid: toHex(keyId(ec)), key: spki(ec) },
  ]);
  const rsa = join(ctx.dir, 'rsa.pub');
  writeFileSync(
    rsa,
    generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'pem', type: 'spki' }),
  );
  await init('--release-key', rsa).then(
    () => assert.unreachable('an RSA release key was pinned'),
    (e: { code: number; stderr: string }) => {
      assert.is(e.code, 1);
      assert.match(e.stderr, `--release-key ${rsa}`);
    },
  );
});

it('update.json: defaults, relative slots, and every wrong field named', () => {
  const sw = { name: 'app', version: '1.0.0', slots: 'slots', restart: ['systemctl', 'restart', 'app'] };
  const c = parseUpdateConfig({ software: sw }, '/var/lib/vigil-agent');
  assert.equal(c.software, { ...sw, slots: '/var/lib/vigil-agent/slots', agent: false });
  assert.equal(
    [c.healthWindowMs, c.healthIntervalMs, c.commandTimeoutMs, c.operations],
    [30_000, 5_000, 60_000, {}],
  );
  const cases: [unknown, string][] = [
    [{}, '"software" must be an object'],
    [{ software: { ...sw, name: 'my app' } }, '"software.name"'],
    [
      { software: { ...sw, restart: 'systemctl restart app' } },
      '"software.restart" must be a command as a list of arguments',
    ],
    [{ software: { ...sw, agent: 'yes' } }, '"software.agent" must be true or false'],
    [{ software: sw, healthWindowMs: -1 }, '"healthWindowMs" must be milliseconds'],
    [{ software: sw, operations: { recipe: { run: [] } } }, '"operations.recipe.run"'],
  ];
  for (const [raw, message] of cases)
    assert.throws(
      () => parseUpdateConfig(raw, '/d', 'update.json'),
      (e: Error) => e instanceof UpdateConfigError && e.message.includes(message),
      message,
    );
});

it.run();
