import { createHash, generateKeyPairSync, type KeyObject, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { UPDATE_CONFIG_FILE } from '../../device/update/config.ts';
import { adoptTree } from '../../device/update/slots.ts';
import type { Command, Report } from '../../shared/protocol/messages.ts';
import { signRelease } from '../../shared/protocol/release-manifest.ts';
import { formatManifest, manifestDigest } from '../../shared/protocol/software-manifest.ts';
import { writeUstar } from '../../shared/tar/writer.ts';
import { toHex } from '../../shared/tpm/bytes.ts';

// Releases made in memory for tests, with the expected digest computed from the files themselves
// (the software manifest's rules), not by the archive code under test.

export type TreeFiles = Readonly<Record<string, string | { readonly data: string; readonly exec: true }>>;

const content = (v: TreeFiles[string]) => (typeof v === 'string' ? v : v.data);

export function writeTree(dir: string, files: TreeFiles): void {
  for (const [path, v] of Object.entries(files)) {
    const file = join(dir, path);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, content(v));
    if (typeof v !== 'string') chmodSync(file, 0o755);
  }
}

/** The software manifest digest of a tree of these files, as name and version. */
export function treeDigest(name: string, version: string, files: TreeFiles): Uint8Array {
  return manifestDigest(
    formatManifest({
      name,
      version,
      files: Object.entries(files).map(([path, v]) => ({
        path,
        sha256: createHash('sha256').update(content(v)).digest('hex'),
      })),
    }),
  );
}

export function tarOf(files: TreeFiles): Uint8Array {
  return writeUstar(
    Object.entries(files).map(([path, v]) => ({
      path,
      data: new TextEncoder().encode(content(v)),
      executable: typeof v !== 'string',
    })),
  );
}

export interface TestRelease {
  readonly name: string;
  readonly version: string;
  readonly seq: number;
  /** The signed release manifest. */
  readonly manifest: Uint8Array;
  readonly artifact: Uint8Array;
  /** Hex software manifest digest of the tree. */
  readonly digest: string;
}

export interface ReleaseSpec {
  readonly key: KeyObject;
  readonly name: string;
  readonly version: string;
  readonly seq: number;
  readonly files: TreeFiles;
  readonly expires?: number;
  readonly windowMs?: number;
  /** Ship these bytes as the artifact instead of the tree's archive (signed all the same). */
  readonly artifact?: Uint8Array;
}

export function makeRelease(s: ReleaseSpec): TestRelease {
  const artifact = s.artifact ?? tarOf(s.files);
  const digest = treeDigest(s.name, s.version, s.files);
  const manifest = signRelease(s.key, {
    name: s.name,
    version: s.version,
    seq: s.seq,
    digest,
    artifact: {
      size: artifact.length,
      sha256: new Uint8Array(createHash('sha256').update(artifact).digest()),
      format: 'tar',
    },
    ...(s.expires !== undefined && { expires: s.expires }),
    ...(s.windowMs !== undefined && { health: { windowMs: s.windowMs } }),
  });
  return { name: s.name, version: s.version, seq: s.seq, manifest, artifact, digest: toHex(digest) };
}

export const releaseKey = () => generateKeyPairSync('ed25519');

// Commands as a gateway sends them.
const base = (rollout = 'r-1') => ({
  t: 'command' as const,
  id: new Uint8Array(randomBytes(16)),
  rollout,
  deadline: 600_000,
});
export const stageCmd = (manifest: Uint8Array): Extract<Command, { op: 'stage' }> => ({
  ...base(),
  op: 'stage',
  manifest,
});
export const chunkCmd = (stage: Uint8Array, offset: number, data: Uint8Array): Command => ({
  ...base(),
  op: 'chunk',
  command: stage,
  offset,
  data,
});
export const activateCmd = (at = 0): Command => ({ ...base(), op: 'activate', at });
export const commitCmd = (): Command => ({ ...base(), op: 'commit' });
export const rollbackCmd = (): Command => ({ ...base(), op: 'rollback' });
export const cancelCmd = (target: Uint8Array): Command => ({ ...base(), op: 'cancel', command: target });
export const operateCmd = (
  name: string,
  at: number,
  args: ReadonlyMap<string, string> = new Map(),
): Command => ({
  ...base(),
  op: 'operate',
  operation: { name, args, token: new Uint8Array(40).fill(7) },
  at,
});

export const hexId = (c: Command | Uint8Array) => toHex(c instanceof Uint8Array ? c : c.id);

/** The last report on a command (hex id), if any. */
export function lastReport(reports: readonly Report[], id: string): Report | undefined {
  for (let i = reports.length - 1; i >= 0; i--) if (toHex(reports[i]!.command) === id) return reports[i];
  return undefined;
}

/**
 * A device's update side on disk under `root`: slot `a` holding `files` as `app` 1.0.0, a restart
 * script counting restarts in ROOT/restarts, a health probe passing while `current/ok` exists, and
 * an operation `recipe` running the shell line `operation`. Returns the agent directory (holding
 * update.json) and the slots.
 */
export function provisionUpdates(
  root: string,
  o: { files: TreeFiles; operation: string; agent?: boolean; settings?: object },
): { dir: string; slots: string } {
  const dir = join(root, 'agent');
  const slots = join(root, 'slots');
  writeTree(join(root, 'v1'), o.files);
  adoptTree(slots, join(root, 'v1'));
  writeFileSync(join(root, 'restart.sh'), `#!/bin/sh\necho restarted >> ${root}/restarts\n`, { mode: 0o755 });
  mkdirSync(dir);
  writeFileSync(
    join(dir, UPDATE_CONFIG_FILE),
    JSON.stringify({
      software: {
        name: 'app',
        version: '1.0.0',
        slots,
        restart: [join(root, 'restart.sh')],
        health: ['sh', '-c', `test -f ${slots}/current/ok`],
        agent: o.agent ?? false,
      },
      healthIntervalMs: 50,
      operations: { recipe: { run: ['sh', '-c', o.operation], timeoutMs: 5000 } },
      ...o.settings,
    }),
  );
  return { dir, slots };
}
