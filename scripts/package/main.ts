import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildAgentDeb, buildAgentSerialDeb } from './agent-package.ts';
import { release } from './context.ts';
import { buildGatewayDeb } from './gateway-package.ts';
import { buildAgentTarball } from './tarball.ts';

// npm run package [-- --out DIR] [--only agent|gateway|tarball]...
// Builds vigil-agent_<v>_all.deb, vigil-gateway_<v>_<arch>.deb and vigil-agent-<v>.tar.gz into
// dist/packages/ (docs/pi.md, "Building the packages").

const ARTEFACTS = {
  agent: buildAgentDeb,
  serial: buildAgentSerialDeb,
  gateway: buildGatewayDeb,
  tarball: buildAgentTarball,
} as const;
type Artefact = keyof typeof ARTEFACTS;

const root = resolve(import.meta.dirname, '../..');
const { values } = parseArgs({
  options: { out: { type: 'string' }, only: { type: 'string', multiple: true } },
  strict: true,
});
const only = values.only ?? Object.keys(ARTEFACTS);
for (const o of only) {
  if (!(o in ARTEFACTS)) {
    console.error(
      `package: --only ${JSON.stringify(o)}: expected one of ${Object.keys(ARTEFACTS).join(', ')}`,
    );
    process.exit(2);
  }
}
const out = resolve(values.out ?? join(root, 'dist/packages'));
const r = release(root);
for (const what of only as Artefact[]) {
  const staging = mkdtempSync(join(tmpdir(), `vigil-package-${what}-`));
  try {
    const file = await ARTEFACTS[what](r, staging, out);
    console.log(`${relative(process.cwd(), file)}  ${(statSync(file).size / 1024).toFixed(0)} KiB`);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}
