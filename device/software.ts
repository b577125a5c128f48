import * as fs from 'node:fs';
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildManifest, formatManifest, manifestDigest } from '../shared/protocol/software-manifest.ts';

// What "the software running now" is for this agent: its own code, measured from the files that
// are actually loaded. Three layouts run the same code:
// - the packaged agent (scripts/package/bundle.ts): one bundled file, with mqtt and pino inside it,
//   in a directory that holds only what the agent loads (its package.json, any native module
//   beside it); the manifest covers that whole directory, dependencies included;
// - built by tsc: dist/{device,shared,firmware-shims};
// - under tsx in development: the TypeScript sources of the same directories.
// In the last two, node_modules is not covered (docs/agent.md says so); `softwareRoot` in
// agent.json widens the manifest to any directory, e.g. a whole read-only install prefix.

export const AGENT_NAME = 'vigil-agent';

const SELF = fileURLToPath(import.meta.url);
const CODE_DIRS = ['device', 'shared', 'firmware-shims'] as const;

/**
 * The running code and what of it the manifest covers. This module's own file name tells the
 * layouts apart: `software.ts` or `software.js` is one module per file under device/; any other
 * name is the bundle, which is a single file named for the agent.
 */
export const CODE: { readonly root: string; readonly include?: readonly string[] } = /^software\.[jt]s$/.test(
  basename(SELF),
)
  ? { root: dirname(dirname(SELF)), include: CODE_DIRS }
  : { root: dirname(SELF) };

/** The version in the package.json nearest above the running code (the bundle's own, dist/.., the repository's). */
export function agentVersion(): string {
  for (let dir = CODE.root; ; dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const version = (JSON.parse(readFileSync(file, 'utf8')) as { version?: unknown }).version;
      if (typeof version === 'string') return version;
    }
    if (dirname(dir) === dir) return '0.0.0-unknown';
  }
}

export interface MeasuredSoftware {
  readonly name: string;
  readonly version: string;
  /** Canonical manifest text (manifest.ts). */
  readonly manifest: string;
  /** SHA-256 of `manifest`. */
  readonly digest: Uint8Array;
}

export interface SoftwareSource {
  readonly name?: string;
  readonly version?: string;
  /** Directory to cover; default the agent's own code (CODE). */
  readonly root?: string;
}

/** The source a configuration names: its `softwareRoot`, else the agent's own code. */
export function configuredSource(softwareRoot: string | undefined): SoftwareSource {
  return softwareRoot !== undefined ? { root: softwareRoot } : {};
}

export function measureSoftware(src: SoftwareSource = {}): MeasuredSoftware {
  const name = src.name ?? AGENT_NAME;
  const version = src.version ?? agentVersion();
  const manifest = formatManifest(
    src.root === undefined
      ? buildManifest(fs, CODE.root, { name, version, ...(CODE.include && { include: CODE.include }) })
      : buildManifest(fs, src.root, { name, version }),
  );
  return { name, version, manifest, digest: manifestDigest(manifest) };
}
