import { cpSync, existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

// What a package ships from node_modules, decided from package-lock.json: the lockfile is what
// `npm ci` installed, so the closure of a set of packages through it is exactly what
// `npm ci --omit=dev` would give for them, resolved the way Node resolves (nearest node_modules
// upwards). Copying from the installed tree instead of installing again means no download and no
// compiler at packaging time: the native modules are the ones `npm ci` built or fetched.

export interface LockedPackage {
  /** Path in the install tree, e.g. `node_modules/@serialport/bindings-cpp`. */
  readonly path: string;
  readonly name: string;
  readonly version: string;
  readonly license: string;
}

interface LockEntry {
  readonly version?: string;
  readonly license?: string;
  readonly dependencies?: Record<string, string>;
  readonly optionalDependencies?: Record<string, string>;
  readonly peerDependencies?: Record<string, string>;
}

export type Lock = ReadonlyMap<string, LockEntry>;

export function readLock(projectRoot: string): Lock {
  const file = join(projectRoot, 'package-lock.json');
  const lock = JSON.parse(readFileSync(file, 'utf8')) as { lockfileVersion?: number; packages?: object };
  if (!lock.packages || (lock.lockfileVersion ?? 0) < 2) {
    throw new Error(`${file}: expected lockfileVersion 2 or 3 with a "packages" map; run npm ci with npm 7+`);
  }
  return new Map(Object.entries(lock.packages as Record<string, LockEntry>));
}

/** Where `name` resolves from the package installed at `from` ('' is the project itself). */
function resolveFrom(lock: Lock, from: string, name: string): string | undefined {
  let dir = from;
  for (;;) {
    const candidate = `${dir === '' ? '' : `${dir}/`}node_modules/${name}`;
    if (lock.has(candidate)) return candidate;
    if (dir === '') return undefined;
    const i = dir.lastIndexOf('/node_modules/');
    dir = i < 0 ? '' : dir.slice(0, i);
  }
}

/** The package a module specifier names: `@a/b/lib/x.js` → `@a/b`, `mqtt` → `mqtt`. */
export function packageName(specifier: string): string {
  return /^((?:@[^/]+\/)?[^/]+)/.exec(specifier)?.[1] ?? specifier;
}

/**
 * The install path of the package a file belongs to, from the first node_modules on:
 * `…/node_modules/a/node_modules/b/x.js` → `node_modules/a/node_modules/b`.
 */
export function installPathOf(file: string): string | undefined {
  const first = file.indexOf('node_modules/');
  if (first < 0) return undefined;
  const start = file.lastIndexOf('node_modules/') + 'node_modules/'.length;
  return file.slice(first, start + packageName(file.slice(start)).length);
}

function locked(lock: Lock, path: string): LockedPackage {
  const entry = lock.get(path);
  if (entry === undefined) throw new Error(`${path} is not in package-lock.json: run npm ci`);
  return {
    path,
    name: packageName(path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length)),
    version: entry.version ?? '0.0.0',
    license: entry.license ?? 'see the package',
  };
}

/** The lockfile's record of installed packages, by install path. */
export function lockedPackages(lock: Lock, paths: Iterable<string>): LockedPackage[] {
  return [...new Set(paths)].sort().map((p) => locked(lock, p));
}

// Declared as dependencies but never loaded at run time: type declarations, and the tools that
// fetch or compile a native module at install time (npm ci already ran them).
const BUILD_TIME_ONLY =
  /^(@types\/.*|undici-types|prebuild-install|node-addon-api|node-gyp|napi-build-utils)$/;

/**
 * The packages `roots` need at run time, themselves included: dependencies, and optional and peer
 * dependencies where installed. A required dependency missing from the lockfile is an error.
 */
export function dependencyClosure(lock: Lock, roots: readonly string[]): LockedPackage[] {
  const seen = new Map<string, LockedPackage>();
  const visit = (from: string, name: string, required: boolean, by: string) => {
    if (BUILD_TIME_ONLY.test(name)) return;
    const path = resolveFrom(lock, from, name);
    if (path === undefined) {
      if (!required) return;
      throw new Error(`${by} needs ${name}, which package-lock.json does not have: run npm ci`);
    }
    if (seen.has(path)) return;
    const entry = lock.get(path)!;
    seen.set(path, locked(lock, path));
    for (const dep of Object.keys(entry.dependencies ?? {})) visit(path, dep, true, path);
    for (const dep of Object.keys(entry.optionalDependencies ?? {})) visit(path, dep, false, path);
    for (const dep of Object.keys(entry.peerDependencies ?? {})) visit(path, dep, false, path);
  };
  for (const name of roots) visit('', name, true, 'the project');
  return [...seen.values()].sort((a, b) => (a.path < b.path ? -1 : 1));
}

/** A Node package that loads compiled code: built by node-gyp or shipped with prebuilds. */
export function isNative(packageDir: string): boolean {
  return existsSync(join(packageDir, 'binding.gyp')) || existsSync(join(packageDir, 'prebuilds'));
}

/** Debian architecture names and Node's, for the targets we package. */
export const NODE_ARCH = { amd64: 'x64', arm64: 'arm64', armhf: 'arm' } as const;
export type DebianArch = keyof typeof NODE_ARCH;

// Run-time files only. Types, maps, TypeScript sources, tests, benchmarks, examples and the
// packages' own documentation are for development; licences travel in the copyright file.
const DEV_FILE =
  /(\.(d\.[cm]?ts|[cm]?ts|map|md|markdown|html)|^(\.eslintrc.*|\.npmignore|\.git.*|\.editorconfig|\.prettierrc.*|\.travis\.yml|\.nycrc.*|(licen[cs]e|copying|authors|changelog|history|readme)(\..*)?))$/i;
const DEV_DIR = /^(\.github|\.husky|test|tests|__tests__|bench|benchmarks|example|examples|docs)$/;

/**
 * Copies `packages` from `projectRoot` into `dest` (keeping their node_modules paths), without
 * what is never loaded at run time. Native packages keep only their compiled module
 * (build/Release/*.node, tests' modules dropped) and the prebuilds for `arches`; their C/C++
 * sources and build trees go.
 */
export function copyPackages(
  projectRoot: string,
  packages: readonly LockedPackage[],
  dest: string,
  arches: readonly DebianArch[],
): void {
  const keepPrebuilds = new Set(arches.map((a) => `linux-${NODE_ARCH[a]}`));
  for (const p of packages) {
    const from = join(projectRoot, p.path);
    const native = isNative(from);
    cpSync(from, join(dest, p.path), {
      recursive: true,
      filter: (src) => {
        const rel = relative(from, src).split('/');
        if (rel[0] === '') return true;
        // Nested node_modules are packages of their own in the closure (or not needed at all).
        if (rel.includes('node_modules')) return false;
        const base = rel[rel.length - 1]!;
        if (statSync(src).isDirectory() ? DEV_DIR.test(base) : DEV_FILE.test(base)) return false;
        if (!native) return true;
        // Debian is glibc: a prebuild for musl would only be dead weight (and lintian's error).
        if (rel[0] === 'prebuilds')
          return rel.length === 1 || (keepPrebuilds.has(rel[1]!) && !base.includes('.musl.'));
        if (rel[0] === 'build') {
          if (rel.length <= 2) return rel.length === 1 || rel[1] === 'Release';
          return rel.length === 3 && rel[2]!.endsWith('.node') && !rel[2]!.startsWith('test_');
        }
        return !['src', 'deps', 'binding.gyp'].includes(rel[0]!);
      },
    });
    removeEmptyDirs(join(dest, p.path));
  }
}

function removeEmptyDirs(dir: string): boolean {
  let empty = true;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (!(e.isDirectory() && removeEmptyDirs(join(dir, e.name)))) empty = false;
  }
  if (empty) rmSync(dir, { recursive: true });
  return empty;
}

/** Every file under `dir` whose name ends with `suffix`, as paths. */
export function filesEndingWith(dir: string, suffix: string): string[] {
  if (!existsSync(dir)) return [];
  return (readdirSync(dir, { recursive: true }) as string[])
    .filter((f) => f.endsWith(suffix))
    .map((f) => join(dir, f));
}

// ELF e_machine values of the architectures above.
const ELF_MACHINE: Record<DebianArch, number> = { amd64: 62, arm64: 183, armhf: 40 };

/**
 * Checks that every compiled module under `dir` is an ELF object for one of `arches`: a package
 * built on the wrong machine fails here instead of on the device with a dlopen error.
 */
export function checkNativeArch(dir: string, arches: readonly DebianArch[]): string[] {
  const modules = filesEndingWith(dir, '.node');
  for (const file of modules) {
    const head = readFileSync(file).subarray(0, 20);
    const isElf = head.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
    const machine = isElf ? head.readUInt16LE(18) : -1;
    if (!arches.some((a) => ELF_MACHINE[a] === machine)) {
      throw new Error(
        `${file} is ${isElf ? `an ELF object for machine ${machine}` : 'not an ELF object'}, not for ${arches.join(' or ')}: ` +
          'build the package on (or for) that architecture',
      );
    }
  }
  return modules;
}
