import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { build, type Metafile, type Plugin } from 'esbuild';
import { installPathOf, isNative, packageName } from './node-modules.ts';

// The agent as one file. esbuild bundles device/cli.ts with what it imports (mqtt, pino and their
// dependencies) into an ES module that runs on Node 18.19+ (Debian 12 and Raspberry Pi OS
// bookworm ship 18.20). A package with compiled code (serialport's bindings, say) cannot be
// inlined: it loads its .node file relative to its own directory. Such packages stay external and
// are copied into node_modules beside the bundle, where Node finds them from the bundle's own
// location; the manifest then covers them too, since it covers the bundle's whole directory.

export const AGENT_ENTRY = 'device/cli.ts';
export const AGENT_FILE = 'vigil-agent.mjs';
/** Node 18.19 is the oldest the agent supports: the oldest Node in the distributions we target. */
export const AGENT_NODE_TARGET = 'node18.19';

// What the agent must never carry: the gateway, its storage and broker. The layer rules in
// biome.json keep device/ from importing them; this catches a transitive path as well.
const FORBIDDEN = /(^|\/)(gateway\/|node_modules\/(better-sqlite3|aedes|pg|redis)\/)/;

// Bundled CommonJS (mqtt, pino) calls require() for Node's modules and for external packages: in
// an ES module there is no require, so the bundle makes one, rooted at the bundle file.
const BANNER =
  "import { createRequire as __vigilCreateRequire } from 'node:module';\n" +
  'const require = __vigilCreateRequire(import.meta.url);';

export interface AgentBundle {
  /** The bundle file. */
  readonly file: string;
  /** Packages that stay external because they load compiled code; to be copied beside the bundle. */
  readonly externals: readonly string[];
  /** Install paths (`node_modules/...`) of the packages inlined into the bundle, for the copyright file. */
  readonly inlined: readonly string[];
  readonly bytes: number;
}

/** Marks packages with compiled code external, whatever imports them; collects their names. */
function nativeExternals(found: Set<string>): Plugin {
  return {
    name: 'native-externals',
    setup(b) {
      b.onResolve({ filter: /^(@[^/]+\/)?[^./][^/]*/ }, (args) => {
        if (args.path.startsWith('node:')) return undefined;
        const name = packageName(args.path);
        // From the importer's own node_modules upwards, as Node resolves.
        for (let dir = args.resolveDir; ; dir = dirname(dir)) {
          if (isNative(join(dir, 'node_modules', name))) {
            found.add(name);
            return { path: args.path, external: true };
          }
          if (dirname(dir) === dir) return undefined;
        }
      });
    },
  };
}

/** Bundles `entry` (relative to `projectRoot`) into `outDir/AGENT_FILE`. */
export async function bundleAgent(
  projectRoot: string,
  outDir: string,
  entry: string = AGENT_ENTRY,
): Promise<AgentBundle> {
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, AGENT_FILE);
  const natives = new Set<string>();
  const result = await build({
    write: false,
    absWorkingDir: projectRoot,
    entryPoints: [entry],
    outfile: file,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: AGENT_NODE_TARGET,
    banner: { js: BANNER },
    // Whitespace and syntax only: identifiers keep their names, so errors and logs read the same.
    minifyWhitespace: true,
    minifySyntax: true,
    legalComments: 'none',
    metafile: true,
    logLevel: 'warning',
    plugins: [nativeExternals(natives)],
  });
  // No #! line: the bundle is run by an explicit node (the unit, /usr/bin/vigil-agent), and
  // cli.ts' `#!/usr/bin/env node` would pick whichever node is first on PATH.
  const code = result.outputFiles[0]!.text.replace(/^#!.*\n/, '');
  writeFileSync(file, code);
  return { ...describe(result.metafile, file, natives), bytes: Buffer.byteLength(code) };
}

function describe(meta: Metafile, file: string, natives: ReadonlySet<string>): AgentBundle {
  const inputs = Object.keys(meta.inputs);
  const forbidden = inputs.filter((p) => FORBIDDEN.test(p));
  if (forbidden.length > 0) {
    throw new Error(
      `the agent bundle would carry the gateway or its storage: ${forbidden.slice(0, 5).join(', ')}; ` +
        'find the import that pulls it into device/ and remove it',
    );
  }
  const output = Object.values(meta.outputs)[0]!;
  // Other external imports are Node's own modules and optional packages that are not installed
  // (ws' bufferutil, debug's supports-color): their require() sits in a try/catch, so esbuild
  // leaves them to fail softly at run time, as they would from node_modules.
  const externals = output.imports.map((i) => packageName(i.path)).filter((n) => natives.has(n));
  const inlined = new Set(inputs.map(installPathOf).filter((p): p is string => p !== undefined));
  return {
    file,
    externals: [...new Set(externals)].sort(),
    inlined: [...inlined].sort(),
    bytes: output.bytes,
  };
}

/** The package.json beside the bundle: its version is what the agent reports and measures. */
export function writeAgentPackageJson(outDir: string, version: string): void {
  const pkg = { name: 'vigil-agent', version, private: true, type: 'module', main: AGENT_FILE };
  writeFileSync(join(outDir, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
}
