import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FILES, stageAgentDir } from './agent-package.ts';
import type { Release } from './context.ts';
import { put } from './deb.ts';
import { copyrightFile } from './notices.ts';

// The agent for a Linux without dpkg: the same agent directory as the .deb's, the same unit,
// tmpfiles.d entries and udev rule, and install.sh, which puts them in place and makes the user.

export async function buildAgentTarball(r: Release, staging: string, out: string): Promise<string> {
  const name = `vigil-agent-${r.version}`;
  const top = join(staging, name);
  // Not a Debian package: the serial binding's prebuilds for every architecture ride along, and
  // its loader picks the one of the machine it runs on.
  const agent = await stageAgentDir(r, join(top, 'lib/vigil-agent'));
  put(top, 'install.sh', readFileSync(join(FILES, 'install.sh')), 0o755);
  put(top, 'systemd/vigil-agent.service', readFileSync(join(FILES, 'vigil-agent.service')));
  put(top, 'tmpfiles.d/vigil-agent.conf', readFileSync(join(FILES, 'vigil-agent.tmpfiles')));
  put(top, 'udev/60-vigil-agent.rules', readFileSync(join(FILES, 'vigil-agent.udev')));
  put(top, 'man/vigil-agent.1', readFileSync(join(FILES, 'vigil-agent.1')));
  mkdirSync(join(top, 'doc'), { recursive: true });
  for (const doc of ['pi.md', 'agent.md']) copyFileSync(join(r.root, 'docs', doc), join(top, 'doc', doc));
  put(top, 'doc/COPYRIGHT', copyrightFile(r.root, 'vigil-agent', agent.thirdParty));
  mkdirSync(out, { recursive: true });
  const tarball = join(out, `${name}.tar.gz`);
  execFileSync(
    'tar',
    // biome-ignore format: option per line would hide the command
    ['--sort=name', `--mtime=@${r.time}`, '--owner=0', '--group=0', '--numeric-owner', '--use-compress-program=gzip -9n', '-cf', tarball, '-C', staging, name],
  );
  return tarball;
}
