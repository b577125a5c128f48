#!/usr/bin/env node
// Runs before `npm start` and `npm test` on a possibly fresh clone, so it may use nothing but
// Node itself: no dependency is installed yet when it first runs.
//   (none)     npm dependencies only
//   --tools    npm dependencies and the system tools the demo and the tests drive (swtpm, tpm2-tools, ...)
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const wantTools = process.argv.includes('--tools');

// The stamp records which lockfile node_modules was installed from; a changed lockfile (a pull
// that added a dependency) makes the install stale even though node_modules exists.
function ensureNpmDependencies() {
  const lock = join(root, 'package-lock.json');
  const stamp = join(root, 'node_modules', '.vigil-lock-sha256');
  const want = createHash('sha256').update(readFileSync(lock)).digest('hex');
  const have = existsSync(stamp) ? readFileSync(stamp, 'utf8').trim() : '';
  if (have === want) return;
  console.error(
    'vigil: npm dependencies missing or stale; running `npm ci` (first run compiles better-sqlite3)',
  );
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const r = spawnSync(npm, ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error('vigil: `npm ci` failed; fix the error above, then run the command again');
    process.exit(r.status ?? 1);
  }
  writeFileSync(stamp, `${want}\n`);
}

const TOOLS = [
  { bin: 'swtpm', pkg: 'swtpm' },
  { bin: 'swtpm_setup', pkg: 'swtpm-tools' },
  { bin: 'tpm2_checkquote', pkg: 'tpm2-tools' },
  { bin: 'mosquitto_sub', pkg: 'mosquitto-clients' },
  { bin: 'socat', pkg: 'socat' },
];

function onPath(bin) {
  return spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;
}

function ensureSystemTools() {
  const missing = TOOLS.filter((t) => !onPath(t.bin));
  if (missing.length === 0) return;
  const pkgs = [...new Set(missing.map((t) => t.pkg))];
  const command = `apt-get update && apt-get install -y ${pkgs.join(' ')}`;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot) {
    console.error(`vigil: the tests need ${missing.map((t) => t.bin).join(', ')}, which are not installed.`);
    console.error(`Install them as root, then run the tests again:\n  sudo sh -c '${command}'`);
    process.exit(1);
  }
  console.error(`vigil: installing ${pkgs.join(', ')} (needed by the tests)`);
  try {
    execFileSync('sh', ['-c', `DEBIAN_FRONTEND=noninteractive ${command}`], { stdio: 'inherit' });
  } catch {
    console.error(
      `vigil: installing system packages failed; run this yourself, then try again:\n  ${command}`,
    );
    process.exit(1);
  }
}

ensureNpmDependencies();
if (wantTools) ensureSystemTools();
