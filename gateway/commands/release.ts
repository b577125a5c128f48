import * as fs from 'node:fs';

import {
  buildManifest,
  formatManifest,
  ManifestError,
  manifestDigest,
  parseManifest,
} from '../../shared/protocol/software-manifest.ts';
import type { ReleaseManifestView } from '../api/routes/releases.ts';
import type { ReleaseView } from '../api/views.ts';
import { client, parse, TARGET_OPTIONS, UsageError } from './args.ts';
import { ago, json, table } from './output.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Name, version and digest of a release, from the arguments or computed by the agent's own code. */
function releaseOf(positionals: string[], manifest: string | undefined) {
  if (manifest === undefined) {
    if (positionals.length !== 3)
      throw new UsageError('release add takes NAME VERSION DIGEST, or --manifest FILE');
    const [name, version, digest] = positionals as [string, string, string];
    return { name, version, digest };
  }
  try {
    if (fs.statSync(manifest).isDirectory()) {
      if (positionals.length !== 2)
        throw new UsageError(
          'release add NAME VERSION --manifest DIR: name and version are needed for a tree',
        );
      const [name, version] = positionals as [string, string];
      const text = formatManifest(buildManifest(fs, manifest, { name, version }));
      return { name, version, digest: hex(manifestDigest(text)) };
    }
    const text = fs.readFileSync(manifest, 'utf8');
    const m = parseManifest(text);
    const [name, version] = positionals;
    if (
      (name !== undefined && name !== m.name) ||
      (version !== undefined && version !== m.version) ||
      positionals.length > 2
    )
      throw new UsageError(
        `${manifest} names ${m.name} ${m.version}; leave NAME VERSION out or make them match`,
      );
    return { name: m.name, version: m.version, digest: hex(manifestDigest(text)) };
  } catch (e) {
    if (e instanceof ManifestError) throw new UsageError(`${manifest}: ${e.message}`);
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new UsageError(`${manifest}: no such file`);
    throw e;
  }
}

// Releases as signed files (keygen, pack, verify, import), loaded only when used.
const FILE_COMMANDS: Record<string, () => Promise<(args: string[]) => Promise<number>>> = {
  keygen: async () => (await import('./release-bundle.ts')).keygen,
  pack: async () => (await import('./release-bundle.ts')).pack,
  verify: async () => (await import('./release-bundle.ts')).verify,
  import: async () => (await import('./release-bundle.ts')).importRelease,
};

export async function release(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const file = sub === undefined ? undefined : FILE_COMMANDS[sub];
  if (file) return (await file())(rest);
  const { values, positionals } = parse(rest, {
    ...TARGET_OPTIONS,
    manifest: { type: 'string' },
    json: { type: 'boolean' },
  });
  const api = client(values);
  switch (sub) {
    case 'add': {
      const r = await api.request<{ release: ReleaseView; replaced: string | null }>(
        'POST',
        '/v1/releases',
        releaseOf(positionals, values.manifest),
      );
      process.stdout.write(
        values.json
          ? json(r)
          : `registered ${r.release.name} ${r.release.version} ${r.release.digest}${r.replaced ? ` (replaces digest ${r.replaced})` : ''}\n`,
      );
      return 0;
    }
    case 'list': {
      const { releases } = await api.request<{ releases: ReleaseView[] }>('GET', '/v1/releases');
      const { manifests } = await api.request<{ manifests: ReleaseManifestView[] }>(
        'GET',
        '/v1/releases/manifests',
      );
      // SEQ: the release came from a signed bundle (release import); `-`: registered by digest.
      const seq = (r: ReleaseView) =>
        manifests.find((m) => m.name === r.name && m.version === r.version && m.digest === r.digest)?.seq;
      if (values.json) process.stdout.write(json(releases.map((r) => ({ ...r, seq: seq(r) ?? null }))));
      else if (releases.length === 0)
        process.stdout.write('No releases registered (policy.json may list more).\n');
      else
        process.stdout.write(
          table(
            ['NAME', 'VERSION', 'SEQ', 'DIGEST', 'ADDED'],
            releases.map((r) => [r.name, r.version, String(seq(r) ?? '-'), r.digest, ago(r.addedAt)]),
          ),
        );
      return 0;
    }
    case 'remove': {
      if (positionals.length !== 2) throw new UsageError('release remove takes NAME VERSION');
      const [name, version] = positionals as [string, string];
      const r = await api.request<{ removed: ReleaseView }>(
        'DELETE',
        `/v1/releases/${encodeURIComponent(name)}/${encodeURIComponent(version)}`,
      );
      process.stdout.write(values.json ? json(r) : `removed ${r.removed.name} ${r.removed.version}\n`);
      return 0;
    }
    default:
      throw new UsageError(
        `release takes keygen, pack, verify, import, add, list or remove, got ${sub === undefined ? 'nothing' : `"${sub}"`}`,
      );
  }
}
