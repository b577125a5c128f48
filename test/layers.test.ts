import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { removeDir, tempDir } from './support/tmp.ts';

// The layers (shared/ does no I/O and imports neither side; the gateway and the agent never import
// each other) are kept by Biome's noRestrictedImports in biome.json. This runs the project's own
// configuration over probe files, so a rule that stops biting fails here rather than silently.

const root = join(dirname(new URL(import.meta.url).pathname), '..');
const biome = join(root, 'node_modules', '.bin', 'biome');

interface Diagnostic {
  readonly category: string;
  readonly message: string;
  readonly location: { readonly path: string };
}

function lint(files: Record<string, string>): Diagnostic[] {
  const dir = tempDir('vigil-layers-');
  try {
    copyFileSync(join(root, 'biome.json'), join(dir, 'biome.json'));
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), text);
    }
    let out: string;
    try {
      out = execFileSync(biome, ['lint', '--reporter=json', ...Object.keys(files)], {
        cwd: dir,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      });
    } catch (e) {
      out = (e as { stdout: string }).stdout;
    }
    const report = JSON.parse(out) as { diagnostics: Diagnostic[] };
    return report.diagnostics.filter((d) => d.category === 'lint/style/noRestrictedImports');
  } finally {
    removeDir(dir);
  }
}

const it = suite('layers');

it('shared/ may not do I/O nor import either side', () => {
  const found = lint({
    'shared/a.ts': "import { readFileSync } from 'node:fs';\nexport const a = readFileSync;\n",
    'shared/b.ts': "import { startGateway } from '../gateway/gateway.ts';\nexport const b = startGateway;\n",
    'shared/c.ts': "import mqtt from 'mqtt';\nexport const c = mqtt;\n",
    'shared/ok.ts': "import { createHash } from 'node:crypto';\nexport const ok = createHash;\n",
  });
  assert.equal(found.map((d) => d.location.path).sort(), ['shared/a.ts', 'shared/b.ts', 'shared/c.ts']);
  assert.match(found.find((d) => d.location.path === 'shared/a.ts')!.message, /does no I\/O/);
});

it('the gateway may not import the agent, its adapters or test equipment', () => {
  const found = lint({
    'gateway/a.ts': "import { startAgent } from '../device/agent.ts';\nexport const a = startAgent;\n",
    'gateway/x/b.ts': "import { Tpm } from '../../firmware-shims/tpm/tpm.ts';\nexport const b = Tpm;\n",
    'gateway/c.ts':
      "import { SimDevice } from '../test/equipment/sim/sim-device.ts';\nexport const c = SimDevice;\n",
    'gateway/ok.ts':
      "import { decodeCbor } from '../shared/cbor/decode.ts';\nexport const ok = decodeCbor;\n",
  });
  assert.equal(found.map((d) => d.location.path).sort(), ['gateway/a.ts', 'gateway/c.ts', 'gateway/x/b.ts']);
});

it('the agent and its adapters may not import the gateway', () => {
  const found = lint({
    'device/a.ts': "import { startGateway } from '../gateway/gateway.ts';\nexport const a = startGateway;\n",
    'firmware-shims/tpm/b.ts':
      "import { Fleet } from '../../gateway/posture/fleet.ts';\nexport const b = Fleet;\n",
    'device/ok.ts': "import { Tpm } from '../firmware-shims/tpm/tpm.ts';\nexport const ok = Tpm;\n",
  });
  assert.equal(found.map((d) => d.location.path).sort(), ['device/a.ts', 'firmware-shims/tpm/b.ts']);
});

it.run();
