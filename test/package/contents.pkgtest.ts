import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { bundleAgent } from '../../scripts/package/bundle.ts';
import { hostArch } from '../../scripts/package/gateway-package.ts';
import { removeDir, tempDir } from '../support/tmp.ts';
import { build, HOST_NODE, nodeExec, ROOT, unitCommand, unpackDeb } from './support.ts';

// What the packages hold and how they install, checked from the built files: file lists, control
// fields, maintainer scripts, the units (systemd-analyze verify and security, which both work
// here on a unit file without a running systemd), the tmpfiles.d entries (applied by
// systemd-tmpfiles to a scratch root), lintian at warning level, and the tarball's install.sh
// (into a DESTDIR).

const ctx: {
  out?: string;
  agent?: string;
  serial?: string;
  gateway?: string;
  tarball?: string;
  dirs: string[];
} = {
  dirs: [],
};
const test = suite('package contents', ctx);
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

test.before(async () => {
  ctx.out = tempDir('packages');
  ctx.agent = await build('agent', ctx.out);
  ctx.serial = await build('serial', ctx.out);
  ctx.gateway = await build('gateway', ctx.out);
  ctx.tarball = await build('tarball', ctx.out);
});

test.after(() => {
  for (const d of [ctx.out, ...ctx.dirs]) if (d) removeDir(d);
});

/** Regular files in a package, as `mode /path`. */
const files = (deb: string) =>
  execFileSync('dpkg-deb', ['-c', deb], { encoding: 'utf8', maxBuffer: 64 << 20 })
    .trim()
    .split('\n')
    .map((l) => l.split(/\s+/))
    .filter((f) => !f[0]!.startsWith('d'))
    .map((f) => ({ mode: f[0]!, path: f[5]!.replace(/^\./, '') }));
const field = (deb: string, name: string) =>
  execFileSync('dpkg-deb', ['-f', deb, name], { encoding: 'utf8' }).trim();
const script = (deb: string, name: string) =>
  execFileSync('dpkg-deb', ['-I', deb, name], { encoding: 'utf8' });

test('vigil-agent: exactly the agent, its unit, event-log access, docs; Architecture all', () => {
  assert.equal(
    files(ctx.agent!).map((f) => `${f.mode} ${f.path}`),
    [
      '-rw-r--r-- /lib/systemd/system/vigil-agent.service',
      '-rw-r--r-- /lib/udev/rules.d/60-vigil-agent.rules',
      '-rwxr-xr-x /usr/bin/vigil-agent',
      '-rw-r--r-- /usr/lib/tmpfiles.d/vigil-agent.conf',
      '-rw-r--r-- /usr/lib/vigil-agent/package.json',
      '-rw-r--r-- /usr/lib/vigil-agent/vigil-agent.mjs',
      '-rw-r--r-- /usr/share/doc/vigil-agent/agent.md.gz',
      '-rw-r--r-- /usr/share/doc/vigil-agent/changelog.gz',
      '-rw-r--r-- /usr/share/doc/vigil-agent/copyright',
      '-rw-r--r-- /usr/share/doc/vigil-agent/pi.md.gz',
      '-rw-r--r-- /usr/share/man/man1/vigil-agent.1.gz',
    ],
  );
  assert.is(ctx.agent!.endsWith(`vigil-agent_${VERSION}_all.deb`), true);
  assert.is(field(ctx.agent!, 'Package'), 'vigil-agent');
  assert.is(field(ctx.agent!, 'Version'), VERSION);
  assert.is(field(ctx.agent!, 'Architecture'), 'all');
  assert.is(field(ctx.agent!, 'Depends'), 'nodejs (>= 18.19), adduser, tpm-udev');
  // The bundle carries the agent with mqtt and pino in it, and no native module (the build refuses
  // the gateway and its storage outright: see the next test).
  const root = unpackDeb(ctx.agent!);
  ctx.dirs.push(root);
  const bundle = readFileSync(join(root, 'usr/lib/vigil-agent/vigil-agent.mjs'), 'utf8');
  assert.not.match(bundle, /^#!/, 'no #! line: the unit and /usr/bin/vigil-agent name /usr/bin/node');
  assert.match(bundle, /MqttClient/);
  assert.match(bundle, /answered challenge/);
  assert.not.match(bundle, /better_sqlite3\.node|require\("better-sqlite3"\)/);
  const copyright = readFileSync(join(root, 'usr/share/doc/vigil-agent/copyright'), 'utf8');
  assert.match(copyright, /^ {2}mqtt \d+\.\d+\.\d+ \(MIT\)$/m);
  assert.match(copyright, /^ {2}pino \d+\.\d+\.\d+ \(MIT\)$/m);
});

test('the bundler refuses to put the gateway into an agent bundle', async () => {
  const dir = tempDir('bundle');
  ctx.dirs.push(dir);
  try {
    await bundleAgent(ROOT, dir, 'gateway/cli.ts');
    assert.unreachable('bundled the gateway');
  } catch (e) {
    assert.match((e as Error).message, /would carry the gateway or its storage: .*gateway\//);
  }
});

test('vigil-agent maintainer scripts: service user in tss, unit enabled through deb-systemd-helper', () => {
  for (const name of ['postinst', 'prerm', 'postrm']) {
    const text = script(ctx.agent!, name);
    const check = spawnSync('sh', ['-n'], { input: text });
    assert.is(check.status, 0, `${name} is valid sh: ${check.stderr}`);
    for (const line of text.split('\n').filter((l) => /\bsystemctl\b/.test(l) && !l.trim().startsWith('#')))
      assert.match(line, /daemon-reload/, `${name} calls systemctl only to reload: ${line}`);
  }
  const postinst = script(ctx.agent!, 'postinst');
  assert.match(postinst, /adduser --quiet --system --group --home \/var\/lib\/vigil-agent/);
  assert.match(postinst, /adduser --quiet vigil-agent tss/);
  assert.match(postinst, /deb-systemd-helper enable vigil-agent\.service/);
  assert.match(postinst, /deb-systemd-invoke "\$action" vigil-agent\.service/);
  assert.match(postinst, /systemd-tmpfiles --create vigil-agent\.conf/);
  assert.match(script(ctx.agent!, 'postrm'), /deb-systemd-helper purge vigil-agent\.service/);
});

function unitOf(deb: string, name: string): string {
  const root = unpackDeb(deb);
  ctx.dirs.push(root);
  return join(root, 'lib/systemd/system', name);
}

function securityScore(unit: string): number {
  const out = execFileSync('systemd-analyze', ['security', '--offline=true', '--no-pager', unit], {
    encoding: 'utf8',
  });
  const m = /Overall exposure level for \S+: (\d+\.\d)/.exec(out);
  if (!m) throw new Error(`no exposure level in:\n${out}`);
  return Number(m[1]);
}

test('the agent unit: verifies cleanly, inert until init, exposure 2.0 or better, the TPM and serial reachable', () => {
  const unit = unitOf(ctx.agent!, 'vigil-agent.service');
  const verify = spawnSync('systemd-analyze', ['verify', '--man=no', unit], { encoding: 'utf8' });
  assert.is(verify.status, 0, verify.stderr);
  assert.is(verify.stderr, '', 'no warning from systemd-analyze verify');
  const score = securityScore(unit);
  assert.ok(score <= 2.0, `exposure ${score}`);
  const text = readFileSync(unit, 'utf8');
  assert.match(text, /^ConditionPathExists=\/var\/lib\/vigil-agent\/agent\.json$/m);
  assert.match(text, /^WantedBy=multi-user\.target$/m);
  assert.match(text, /^SupplementaryGroups=tss dialout$/m);
  assert.match(text, /^DeviceAllow=char-tpmrm rw$/m);
  assert.match(text, /^CapabilityBoundingSet=$/m);
  assert.not.match(text, /CAP_DAC_READ_SEARCH/);
  const cmd = unitCommand(text);
  assert.is(cmd.node, '/usr/bin/node');
  assert.equal(cmd.flags, ['--lite-mode', '--no-expose-wasm', '--max-semi-space-size=1']);
  assert.is(cmd.script, '/usr/lib/vigil-agent/vigil-agent.mjs');
  // The check is real: a unit with a typo does not pass verify silently.
  const broken = join(tempDir('unit'), 'vigil-agent.service');
  ctx.dirs.push(join(broken, '..'));
  writeFileSync(broken, text.replace('UMask=0077', 'UMask=0077\nProtectSystm=strict'));
  assert.match(
    spawnSync('systemd-analyze', ['verify', '--man=no', broken], { encoding: 'utf8' }).stderr,
    /Unknown key/,
  );
});

test('tmpfiles.d makes the event logs readable to tss, nothing more', () => {
  const root = unpackDeb(ctx.agent!);
  ctx.dirs.push(root);
  const scratch = tempDir('tmpfiles-root');
  ctx.dirs.push(scratch);
  const logs = [
    'sys/kernel/security/tpm0/binary_bios_measurements',
    'sys/kernel/security/ima/ascii_runtime_measurements',
  ];
  for (const log of logs) {
    mkdirSync(join(scratch, log, '..'), { recursive: true });
    writeFileSync(join(scratch, log), 'log');
    execFileSync('chmod', ['0400', join(scratch, log)]);
  }
  // systemd-tmpfiles resolves names in the root it works on: a tss of our own, gid 4242.
  mkdirSync(join(scratch, 'etc'));
  writeFileSync(join(scratch, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(scratch, 'etc/group'), 'root:x:0:\ntss:x:4242:\n');
  execFileSync('systemd-tmpfiles', [
    '--root',
    scratch,
    '--create',
    join(root, 'usr/lib/tmpfiles.d/vigil-agent.conf'),
  ]);
  for (const log of logs) {
    const st = statSync(join(scratch, log));
    assert.is(st.gid, 4242, `${log} group`);
    assert.is(st.uid, 0, `${log} owner`);
    assert.is(st.mode & 0o777, 0o440, `${log} mode`);
  }
  assert.match(
    readFileSync(join(root, 'lib/udev/rules.d/60-vigil-agent.rules'), 'utf8'),
    /^ACTION=="add", SUBSYSTEM=="tpmrm", RUN\+="\/bin\/systemd-tmpfiles --create vigil-agent\.conf"$/m,
  );
});

test('vigil-gateway: built gateway, production node_modules for this architecture, Node ABI pinned', () => {
  const arch = hostArch();
  assert.ok(ctx.gateway!.endsWith(`vigil-gateway_${VERSION}_${arch}.deb`));
  assert.is(field(ctx.gateway!, 'Architecture'), arch);
  const depends = field(ctx.gateway!, 'Depends');
  const major = Number(process.versions.node.split('.')[0]);
  assert.match(depends, `nodejs (>= ${Math.max(major, 20)}), nodejs (<< ${major + 1}), adduser, libc6`);
  const paths = files(ctx.gateway!).map((f) => f.path);
  for (const p of [
    '/usr/bin/vigil-gateway',
    '/lib/systemd/system/vigil-gateway.service',
    '/usr/lib/vigil-gateway/package.json',
    '/usr/lib/vigil-gateway/dist/gateway/cli.js',
    '/usr/lib/vigil-gateway/dist/shared/protocol/index.js',
    '/usr/lib/vigil-gateway/dist/gateway/dashboard/public/index.html',
    '/usr/lib/vigil-gateway/node_modules/aedes/package.json',
    '/usr/lib/vigil-gateway/node_modules/better-sqlite3/build/Release/better_sqlite3.node',
    '/usr/share/man/man1/vigil-gateway.1.gz',
  ])
    assert.ok(paths.includes(p), `${p} is in the package`);
  const stray = paths.filter((p) =>
    /\/(device|firmware-shims|test)\/|\.ts$|\.map$|\/@types\/|\/prebuild-install\/|\/better-sqlite3\/(src|deps)\//.test(
      p,
    ),
  );
  assert.equal(stray, [], 'no agent code, sources, types or build-time packages');
  assert.ok(
    paths.some((p) => /\/dashboard\/public\/assets\/app-[A-Z0-9]+\.js$/.test(p)),
    'the dashboard, built and content-hashed',
  );
  assert.not.ok(
    paths.some((p) => /\/node_modules\/(esbuild|preact|@noble)\//.test(p)),
    'no build-time packages',
  );
  const unit = unitOf(ctx.gateway!, 'vigil-gateway.service');
  assert.is(spawnSync('systemd-analyze', ['verify', '--man=no', unit], { encoding: 'utf8' }).stderr, '');
  assert.ok(securityScore(unit) <= 2.0);
});

test('vigil-agent-serial: the serial binding for this architecture, into the agent directory', () => {
  const arch = execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
  assert.ok(ctx.serial!.endsWith(`vigil-agent-serial_${VERSION}_${arch}.deb`), ctx.serial);
  assert.is(field(ctx.serial!, 'Architecture'), arch);
  const depends = field(ctx.serial!, 'Depends');
  assert.ok(depends.startsWith(`vigil-agent (= ${VERSION}), nodejs (>= 18.19), libc6`), depends);
  const paths = files(ctx.serial!).map((f) => f.path);
  const natives = paths.filter((p) => p.endsWith('.node'));
  assert.ok(natives.length > 0, 'a compiled module');
  for (const p of natives)
    assert.match(
      p,
      /^\/usr\/lib\/vigil-agent\/node_modules\/@serialport\/bindings-cpp\/prebuilds\/linux-(x64|arm64|arm)\//,
    );
  const nodeArch = { amd64: 'x64', arm64: 'arm64', armhf: 'arm' }[arch];
  assert.ok(
    natives.every((p) => p.includes(`/linux-${nodeArch}/`)),
    'only this architecture',
  );
  assert.not.ok(
    paths.some((p) => p.endsWith('vigil-agent.mjs')),
    'the agent itself is vigil-agent',
  );
  assert.ok(
    readdirSync(ctx.out!).includes(`vigil-agent_${VERSION}+serial_${arch}.manifest`),
    'the manifest of the agent with serial support, beside the package',
  );
});

test('lintian: no error or warning on any package', () => {
  const r = spawnSync(
    'lintian',
    ['--fail-on', 'error,warning', '--display-level', '>=warning', ctx.agent!, ctx.serial!, ctx.gateway!],
    {
      encoding: 'utf8',
    },
  );
  const tags = r.stdout.split('\n').filter((l) => /^[EW]: /.test(l));
  assert.equal(tags, []);
  assert.is(r.status, 0, r.stderr);
});

test('the tarball installs into a DESTDIR with the unit pointing at the installed agent', async () => {
  const dir = tempDir('tarball');
  ctx.dirs.push(dir);
  execFileSync('tar', ['-xzf', ctx.tarball!, '-C', dir]);
  const top = join(dir, `vigil-agent-${VERSION}`);
  const dest = join(dir, 'dest');
  execFileSync(join(top, 'install.sh'), ['--prefix', '/opt/vigil', '--node', process.execPath], {
    env: { ...process.env, DESTDIR: dest },
  });
  const unit = readFileSync(join(dest, 'etc/systemd/system/vigil-agent.service'), 'utf8');
  assert.match(unit, `ExecStart=${process.execPath} --lite-mode`);
  assert.match(unit, '/opt/vigil/lib/vigil-agent/vigil-agent.mjs run');
  for (const f of [
    'etc/tmpfiles.d/vigil-agent.conf',
    'etc/udev/rules.d/60-vigil-agent.rules',
    'opt/vigil/bin/vigil-agent',
  ])
    assert.ok(statSync(join(dest, f)).isFile(), f);
  const { stdout } = await nodeExec(HOST_NODE, [
    join(dest, 'opt/vigil/lib/vigil-agent/vigil-agent.mjs'),
    'help',
  ]);
  assert.match(stdout, /vigil-agent init --gateway/);
  // A Node too old for the bundle is refused with the version named.
  const old = join(dir, 'node16');
  writeFileSync(old, '#!/bin/sh\n[ "$1" = --version ] && echo v16.20.2 && exit 0\nexit 1\n');
  execFileSync('chmod', ['+x', old]);
  const refused = spawnSync(join(top, 'install.sh'), ['--node', old], {
    env: { ...process.env, DESTDIR: dest },
    encoding: 'utf8',
  });
  assert.is(refused.status, 1);
  assert.match(refused.stderr, /Node v16\.20\.2; the agent needs 18\.19 or later/);
});

test.run();
