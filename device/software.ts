import * as fs from 'node:fs';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildManifest, formatManifest, manifestDigest } from '../shared/protocol/software-manifest.ts';

// What "the software running now" is for this agent: its own code, measured from the files that
// are actually loaded. Built, that is dist/{device,shared,firmware-shims}; under tsx in
// development, the TypeScript sources of the same directories. Dependencies in node_modules are
// not covered (docs/agent.md says so); `softwareRoot` in agent.json widens the manifest to any
// directory, e.g. a whole read-only install prefix.

export const AGENT_NAME = 'vigil-agent';

/** Directory holding device/, shared/ and firmware-shims/ of the running code. */
export const CODE_ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const CODE_DIRS = ['device', 'shared', 'firmware-shims'] as const;

/** The version in the package.json nearest above the running code (dist/.. or the repository). */
export function agentVersion(): string {
  for (let dir = CODE_ROOT; ; dir = dirname(dir)) {
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
  /** Directory to cover; default CODE_ROOT restricted to the agent's code directories. */
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
      ? buildManifest(fs, CODE_ROOT, { name, version, include: CODE_DIRS })
      : buildManifest(fs, src.root, { name, version }),
  );
  return { name, version, manifest, digest: manifestDigest(manifest) };
}
