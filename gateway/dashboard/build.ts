import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';

// Builds the dashboard app (gateway/dashboard/app) into a few content-hashed files and the
// index.html that loads them. esbuild is a development dependency: this module is loaded only to
// build, by `npm run build` (which ships the result in dist/) or by a gateway run from its sources
// (gateway/dashboard/assets.ts), never by an installed gateway.
//
//   tsx gateway/dashboard/build.ts OUT_DIR     writes the files, index.html and manifest.json

const APP = fileURLToPath(new URL('./app/', import.meta.url));

export interface BuiltFile {
  /** File name under assets/, content-hashed. */
  readonly name: string;
  readonly bytes: Uint8Array;
}

export interface BuiltDashboard {
  readonly index: string;
  readonly files: readonly BuiltFile[];
}

/**
 * shared/cose/sign1.ts signs and verifies with node:crypto; the browser only decodes COSE there
 * (decodeSign1, toBeSigned) and verifies with @noble/curves. node:crypto resolves to a module whose
 * functions throw, so that a browser path that would need it fails loudly rather than the build.
 */
const nodeCryptoInBrowser: esbuild.Plugin = {
  name: 'node-crypto-in-browser',
  setup(build) {
    build.onResolve({ filter: /^node:crypto$/ }, () => ({ path: join(APP, 'ear', 'no-node-crypto.ts') }));
  },
};

export async function buildDashboard(): Promise<BuiltDashboard> {
  const outdir = join(APP, '..', 'assets');
  const result = await esbuild.build({
    entryPoints: { app: join(APP, 'main.tsx') },
    bundle: true,
    format: 'esm',
    // The EAR check and the chart load when first needed: the first render waits for neither.
    splitting: true,
    platform: 'browser',
    target: ['chrome111', 'firefox111', 'safari16'],
    minify: true,
    write: false,
    outdir,
    entryNames: '[name]-[hash]',
    chunkNames: '[name]-[hash]',
    assetNames: '[name]-[hash]',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    tsconfig: join(APP, 'tsconfig.json'),
    legalComments: 'linked',
    metafile: true,
    plugins: [nodeCryptoInBrowser],
    logLevel: 'silent',
  });
  const files = result.outputFiles.map((f) => ({ name: basename(f.path), bytes: f.contents }));
  const [script, entry] = Object.entries(result.metafile.outputs).find(([, o]) => o.entryPoint) ?? [];
  if (!script || !entry?.cssBundle)
    throw new Error('dashboard build: expected an entry script with its stylesheet');
  return { index: indexHtml(basename(script), basename(entry.cssBundle)), files };
}

// Relative URLs: the page works under any path prefix a reverse proxy may put it. No inline
// script or style anywhere (the Content-Security-Policy forbids them).
function indexHtml(script: string, style: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Vigil gateway</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="assets/${style}">
<script type="module" src="assets/${script}"></script>
</head>
<body>
<div id="app"><noscript>The Vigil dashboard needs JavaScript.</noscript></div>
</body>
</html>
`;
}

/** Writes a build to `dir` (replacing it whole): assets/, index.html and manifest.json. */
export function writeDashboard(built: BuiltDashboard, dir: string): void {
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(join(tmp, 'assets'), { recursive: true });
  for (const f of built.files) writeFileSync(join(tmp, 'assets', f.name), f.bytes);
  writeFileSync(join(tmp, 'index.html'), built.index);
  writeFileSync(join(tmp, 'manifest.json'), `${JSON.stringify({ files: built.files.map((f) => f.name) })}\n`);
  mkdirSync(dirname(dir), { recursive: true });
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const out = process.argv[2];
  if (!out) {
    console.error('usage: tsx gateway/dashboard/build.ts OUT_DIR');
    process.exit(2);
  }
  writeDashboard(await buildDashboard(), resolve(out));
  console.error(`dashboard built into ${out}`);
}
