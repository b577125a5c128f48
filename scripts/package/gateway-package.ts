import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { FILES } from './agent-package.ts';
import type { Release } from './context.ts';
import { buildDeb, put, putGzip } from './deb.ts';
import { maintainerScripts } from './maintainer-scripts.ts';
import {
  checkNativeArch,
  copyPackages,
  type DebianArch,
  dependencyClosure,
  type LockedPackage,
  NODE_ARCH,
  packageName,
  readLock,
} from './node-modules.ts';
import { copyrightFile } from './notices.ts';

// vigil-gateway: the edge server's package. The gateway runs as `npm run build` emits it (tsc,
// one file per module: stack traces and a debugger see the sources' structure), on Node 20+,
// with the production packages it imports copied from node_modules. better-sqlite3 is compiled
// for one Node ABI and one CPU: the package is for the architecture it is built on and for the
// Node major it is built with, and says so in Depends.

export const GATEWAY_LIB = 'usr/lib/vigil-gateway';
const GATEWAY_ENTRY = 'gateway/cli.ts';
// What the gateway's code may be made of: itself and what both sides share.
const GATEWAY_SOURCES = /^(gateway|shared)\//;

/** The Debian architecture of this machine, which is what the native modules were built for. */
export function hostArch(): DebianArch {
  const arch = execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
  if (!(arch in NODE_ARCH))
    throw new Error(`dpkg architecture ${arch} is not one Vigil packages (amd64, arm64, armhf)`);
  return arch as DebianArch;
}

/**
 * Only a gateway run from its sources builds the dashboard (gateway/dashboard/assets.ts); an
 * installed one serves the files built into the package, so the builder's imports (esbuild, the
 * app's libraries) are not the gateway's.
 */
const BUILD_TIME = /^gateway\/dashboard\/build\.ts$/;

/** The packages the gateway imports, found by following its imports (dynamic ones included). */
async function importedPackages(root: string): Promise<string[]> {
  const result = await build({
    absWorkingDir: root,
    entryPoints: [GATEWAY_ENTRY],
    bundle: true,
    write: false,
    outdir: 'unused',
    platform: 'node',
    format: 'esm',
    packages: 'external',
    metafile: true,
    logLevel: 'warning',
  });
  const foreign = Object.keys(result.metafile.inputs).filter((p) => !GATEWAY_SOURCES.test(p));
  if (foreign.length > 0)
    throw new Error(`the gateway imports code outside gateway/ and shared/: ${foreign.join(', ')}`);
  const names = Object.entries(result.metafile.inputs)
    .filter(([path]) => !BUILD_TIME.test(path))
    .flatMap(([, input]) => input.imports)
    .filter((i) => i.external && !i.path.startsWith('node:'))
    .map((i) => packageName(i.path))
    .filter((n) => !builtinModules.includes(n));
  return [...new Set(names)].sort();
}

export interface GatewayDir {
  readonly dir: string;
  readonly thirdParty: readonly LockedPackage[];
  readonly nativeModules: readonly string[];
}

/** Fills `dir` with the built gateway, its package.json and production node_modules. */
export async function stageGatewayDir(r: Release, dir: string, arch: DebianArch): Promise<GatewayDir> {
  const built = mkdtempSync(join(tmpdir(), 'vigil-gateway-build-'));
  try {
    execFileSync(
      join(r.root, 'node_modules/.bin/tsc'),
      ['-p', 'tsconfig.build.json', '--outDir', built, '--sourceMap', 'false'],
      { cwd: r.root, stdio: 'inherit' },
    );
    for (const d of ['gateway', 'shared']) cpSync(join(built, d), join(dir, 'dist', d), { recursive: true });
    // The dashboard ships built (content-hashed files beside the module that serves them): an
    // installed gateway has no esbuild.
    execFileSync(
      join(r.root, 'node_modules/.bin/tsx'),
      ['gateway/dashboard/build.ts', join(dir, 'dist/gateway/dashboard/public')],
      { cwd: r.root, stdio: 'inherit' },
    );
  } finally {
    rmSync(built, { recursive: true, force: true });
  }
  // gateway/version.ts reads the version from a package.json named "vigil" above dist/.
  const pkg = JSON.parse(readFileSync(join(r.root, 'package.json'), 'utf8')) as Record<string, unknown>;
  const { name, version, type, description, engines } = pkg;
  writeFileSync(
    join(dir, 'package.json'),
    `${JSON.stringify({ name, version, private: true, type, description, engines }, null, 2)}\n`,
  );
  const packages = dependencyClosure(readLock(r.root), await importedPackages(r.root));
  copyPackages(r.root, packages, dir, [arch]);
  const nativeModules = checkNativeArch(dir, [arch]);
  // Debug symbols are for the build machine; a stripped module is a third of the size.
  for (const m of nativeModules) execFileSync('strip', ['--strip-unneeded', '--remove-section=.comment', m]);
  return { dir, thirdParty: packages, nativeModules };
}

/** Shared-library dependencies of the native modules, as dpkg-shlibdeps works them out. */
export function shlibDepends(modules: readonly string[]): string[] {
  if (modules.length === 0) return [];
  // dpkg-shlibdeps wants a source-package layout around it: debian/control and nothing else.
  const src = mkdtempSync(join(tmpdir(), 'vigil-shlibdeps-'));
  try {
    put(src, 'debian/control', 'Source: vigil\n\nPackage: vigil-gateway\nArchitecture: any\n');
    const out = execFileSync('dpkg-shlibdeps', ['-O', '--warnings=0', ...modules], {
      cwd: src,
      encoding: 'utf8',
      // Node's own symbols (the module is loaded into node) are "found in none of the libraries":
      // expected for an addon, and not a dependency.
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const line = /^shlibs:Depends=(.*)$/m.exec(out)?.[1] ?? '';
    return line
      .split(',')
      .map((d) => d.trim())
      .filter(Boolean);
  } finally {
    rmSync(src, { recursive: true, force: true });
  }
}

export async function buildGatewayDeb(r: Release, staging: string, out: string): Promise<string> {
  const arch = hostArch();
  const gw = await stageGatewayDir(r, join(staging, GATEWAY_LIB), arch);
  const nodeMajor = Number(process.versions.node.split('.')[0]);
  put(staging, 'usr/bin/vigil-gateway', readFileSync(join(FILES, 'vigil-gateway.sh')), 0o755);
  put(
    staging,
    'lib/systemd/system/vigil-gateway.service',
    readFileSync(join(FILES, 'vigil-gateway.service')),
  );
  putGzip(staging, 'usr/share/man/man1/vigil-gateway.1.gz', readFileSync(join(FILES, 'vigil-gateway.1')));
  for (const doc of ['operator.md', 'policy.md', 'api.md', 'security.md'])
    putGzip(staging, `usr/share/doc/vigil-gateway/${doc}.gz`, readFileSync(join(r.root, 'docs', doc)));
  return buildDeb(
    {
      name: 'vigil-gateway',
      version: r.version,
      arch,
      // better-sqlite3 is built against one Node ABI (process.versions.modules): that major only.
      depends: [
        `nodejs (>= ${Math.max(nodeMajor, 20)})`,
        `nodejs (<< ${nodeMajor + 1})`,
        'adduser',
        ...shlibDepends(gw.nativeModules),
      ],
      section: 'net',
      synopsis: 'Vigil edge gateway: MQTT broker and verifier for TPM-attested devices',
      description: [
        'The gateway is the MQTT broker (TLS 1.3) Vigil devices connect to. It challenges them ' +
          "after every handshake and periodically, appraises their TPM quotes, keeps the fleet's " +
          'posture in SQLite and lets application traffic through only for attested connections.',
        'It runs as the vigil-gateway service once "vigil-gateway init" has created ' +
          '/var/lib/vigil-gateway (CA, server certificate, policy).',
      ],
      maintainer: r.maintainer,
      time: r.time,
      scripts: maintainerScripts({
        unit: 'vigil-gateway.service',
        user: 'vigil-gateway',
        home: '/var/lib/vigil-gateway',
        gecos: 'Vigil edge gateway',
        groups: [],
      }),
    },
    staging,
    copyrightFile(r.root, 'vigil-gateway', gw.thirdParty),
    out,
  );
}
