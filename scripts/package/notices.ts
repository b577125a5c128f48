import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LockedPackage } from './node-modules.ts';

// /usr/share/doc/<pkg>/copyright: Vigil's own notice, then each third-party package the package
// carries (inlined in the bundle or copied into node_modules) with its licence text, which the
// MIT and ISC licences of most of them require to travel with every copy.

const OWN =
  'Vigil: continuous post-handshake TPM attestation for IoT fleets.\n' +
  'Copyright the Vigil authors.\n\n' +
  'The project has not chosen a licence for its own code yet (its package.json is private):\n' +
  'no rights beyond those of the parties that received it are granted by this package.\n';

// Licences Debian ships in /usr/share/common-licenses (SPDX id → file): policy wants a
// reference there, not a copy.
const COMMON: Readonly<Record<string, string>> = {
  'Apache-2.0': 'Apache-2.0',
  'GPL-2.0': 'GPL-2',
  'GPL-3.0': 'GPL-3',
  'LGPL-2.1': 'LGPL-2.1',
  'LGPL-3.0': 'LGPL-3',
  'MPL-2.0': 'MPL-2.0',
  'CC0-1.0': 'CC0-1.0',
};

function licenceText(projectRoot: string, p: LockedPackage): string {
  const common = COMMON[p.license];
  if (common !== undefined)
    return `On Debian systems, the full text of the ${p.license} licence is in /usr/share/common-licenses/${common}.`;
  const dir = join(projectRoot, p.path);
  const file = existsSync(dir)
    ? readdirSync(dir).find((f) => /^(licen[cs]e|copying)(\.|$)/i.test(f))
    : undefined;
  return file
    ? readFileSync(join(dir, file), 'utf8').trim()
    : `(no licence file in the package; declared: ${p.license})`;
}

export function copyrightFile(projectRoot: string, name: string, packages: readonly LockedPackage[]): string {
  const parts = [`${name}\n\n${OWN}`];
  if (packages.length > 0) {
    parts.push(
      `Third-party packages included (${packages.length}):\n\n` +
        packages.map((p) => `  ${p.name} ${p.version} (${p.license})`).join('\n'),
    );
    for (const p of packages)
      parts.push(`${p.name} ${p.version} (${p.license}):\n\n${licenceText(projectRoot, p)}`);
  }
  return `${parts.join(`\n\n${'-'.repeat(72)}\n\n`)}\n`;
}
