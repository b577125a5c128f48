import { createHash } from 'node:crypto';
import * as fs from 'node:fs';

import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { measureSoftware } from '../../device/software.ts';
import {
  buildManifest,
  formatManifest,
  ManifestError,
  manifestDigest,
  parseManifest,
} from '../../shared/protocol/software-manifest.ts';
import { removeDir, tempDir } from '../support/tmp.ts';

const test = suite('manifest');
const dirs: string[] = [];
test.after(() => {
  for (const d of dirs) removeDir(d);
});

const hex = (s: string) => createHash('sha256').update(s).digest('hex');

test('canonical text: header, files sorted by path bytes; digest = SHA-256 of the text (as sha256sum)', () => {
  const dir = tempDir('manifest');
  dirs.push(dir);
  fs.mkdirSync(join(dir, 'lib'));
  fs.writeFileSync(join(dir, 'lib', 'b.js'), 'b');
  fs.writeFileSync(join(dir, 'Z.txt'), 'z');
  fs.writeFileSync(join(dir, 'a b.js'), 'ab');
  const text = formatManifest(buildManifest(fs, dir, { name: 'app', version: '1.2.3' }));
  const expected = [
    'vigil-manifest/1',
    'name app',
    'version 1.2.3',
    `file ${hex('z')} Z.txt`,
    `file ${hex('ab')} a b.js`,
    `file ${hex('b')} lib/b.js`,
    '',
  ].join('\n');
  assert.is(text, expected);
  assert.equal(manifestDigest(text), new Uint8Array(createHash('sha256').update(expected).digest()));
  assert.equal(parseManifest(text), { name: 'app', version: '1.2.3', files: parseManifest(text).files });
  assert.is(formatManifest(parseManifest(text)), text);
});

test('a fixed vector, so another implementation can check itself', () => {
  const text = formatManifest({
    name: 'vigil-agent',
    version: '0.1.0',
    files: [{ path: 'device/cli.js', sha256: hex('') }],
  });
  assert.is(
    text,
    'vigil-manifest/1\nname vigil-agent\nversion 0.1.0\nfile e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 device/cli.js\n',
  );
  assert.is(
    Buffer.from(manifestDigest(text)).toString('hex'),
    createHash('sha256').update(text).digest('hex'),
  );
});

test('non-canonical text is refused with the line named', () => {
  const good = formatManifest({
    name: 'a',
    version: '1',
    files: [
      { path: 'x', sha256: hex('x') },
      { path: 'y', sha256: hex('y') },
    ],
  });
  const cases: [string, string][] = [
    [good.slice(0, -1), 'newline'],
    [good.replace('vigil-manifest/1', 'vigil-manifest/2'), 'line 1'],
    [good.replace('name a', 'name  a'), 'name'],
    [good.replace('version 1', 'version'), 'line 3'],
    [good.replace(`${hex('x')} x\nfile ${hex('y')} y`, `${hex('y')} y\nfile ${hex('x')} x`), 'sorted'],
    [good.replace(hex('x'), hex('x').toUpperCase()), 'line 4'],
    [`${good}file ${hex('z')} ../z\n`, '..'],
    [good.replace('\n', '\r\n'), 'line 1'],
  ];
  for (const [text, what] of cases) {
    assert.throws(
      () => parseManifest(text),
      (e: Error) => e instanceof ManifestError && e.message.includes(what),
      what,
    );
  }
});

test('symbolic links are refused; names with spaces are refused', () => {
  const dir = tempDir('manifest');
  dirs.push(dir);
  fs.writeFileSync(join(dir, 'real.js'), 'x');
  fs.symlinkSync(join(dir, 'real.js'), join(dir, 'link.js'));
  assert.throws(() => buildManifest(fs, dir, { name: 'a', version: '1' }), /symbolic link/);
  assert.throws(() => formatManifest({ name: 'my app', version: '1', files: [] }), /no spaces/);
});

test("the agent's own manifest covers its code directories", () => {
  const m = measureSoftware();
  const files = parseManifest(m.manifest).files.map((f) => f.path);
  assert.ok(files.includes('device/cli.ts') || files.includes('device/cli.js'));
  assert.ok(
    files.every((p) => /^(device|shared|firmware-shims)\//.test(p)),
    'nothing outside the agent code',
  );
  assert.is(m.name, 'vigil-agent');
});

test.run();
