import { isManifestToken } from '../../../shared/protocol/software-manifest.ts';
import { show } from '../../policy/json-fields.ts';
import type { ReleaseManifestRecord } from '../../releases/model.ts';
import type { ApiContext } from '../context.ts';
import { ApiError } from '../errors.ts';
import { onlyKeys, readJson } from '../http.ts';
import type { Router } from '../router.ts';
import { releaseView } from '../views.ts';

// Software releases as reference values (stored; joined with policy.json's by the runtime
// policy). A change applies from the next round: refreshPolicy rebuilds the runtime policy.
// Signed bundles are imported by `vigil-gateway release import` on the gateway's host (it writes
// the artifact into the gateway directory), which then registers the reference value here.

const DIGEST = /^[0-9a-fA-F]{64}$/;

/** What GET /v1/releases/manifests shows of an imported release (the manifest bytes stay in). */
export interface ReleaseManifestView {
  readonly name: string;
  readonly version: string;
  readonly seq: number;
  readonly digest: string;
  readonly kid: string;
  readonly artifact: { readonly sha256: string; readonly size: number };
  readonly importedAt: number;
}

function releaseManifestView(r: ReleaseManifestRecord): ReleaseManifestView {
  return {
    name: r.name,
    version: r.version,
    seq: r.seq,
    digest: r.digest,
    kid: r.kid,
    artifact: { sha256: r.artifact.sha256, size: r.artifact.size },
    importedAt: r.importedAt,
  };
}

// The software manifest's own rule for names and versions: one printable token.
function token(what: string, v: unknown): string {
  if (typeof v !== 'string' || !isManifestToken(v))
    throw new ApiError(
      'bad-release',
      `release ${what} ${show(v)}: expected 1 to 128 printable ASCII characters, no spaces`,
    );
  return v;
}

export function releaseRoutes(router: Router, ctx: ApiContext): void {
  router.on('GET', '/v1/releases', async () => ({
    status: 200,
    json: { releases: (await ctx.gateway.store.releases()).map(releaseView) },
  }));

  // Releases imported from signed bundles (`vigil-gateway release import`), with their seq.
  router.on('GET', '/v1/releases/manifests', async () => ({
    status: 200,
    json: { manifests: (await ctx.gateway.store.releaseManifests()).map(releaseManifestView) },
  }));

  router.on('POST', '/v1/releases', async ({ req }) => {
    const body = await readJson(req);
    onlyKeys(body, ['name', 'version', 'digest'], 'release');
    const name = token('name', body.name);
    const version = token('version', body.version);
    if (typeof body.digest !== 'string' || !DIGEST.test(body.digest))
      throw new ApiError(
        'bad-release',
        `release digest ${show(body.digest)}: expected the SHA-256 of the release's manifest, 64 hex digits (\`vigil-gateway release add --manifest FILE\` computes it)`,
      );
    const existing = (await ctx.gateway.store.releases()).find(
      (r) => r.name === name && r.version === version,
    );
    const release = { name, version, digest: body.digest.toLowerCase(), addedAt: Date.now() };
    ctx.gateway.store.addRelease(release);
    await ctx.gateway.refreshPolicy();
    ctx.gateway.log.info({ release: `${name} ${version}`, digest: release.digest }, 'release registered');
    return {
      status: existing ? 200 : 201,
      json: { release: releaseView(release), replaced: existing ? existing.digest : null },
    };
  });

  router.on('DELETE', '/v1/releases/:name/:version', async ({ params }) => {
    const { name, version } = params as { name: string; version: string };
    const existing = (await ctx.gateway.store.releases()).find(
      (r) => r.name === name && r.version === version,
    );
    if (!existing)
      throw new ApiError(
        'release-not-found',
        `no registered release ${name} ${version}: see GET /v1/releases`,
      );
    ctx.gateway.store.removeRelease(name, version);
    await ctx.gateway.refreshPolicy();
    ctx.gateway.log.info({ release: `${name} ${version}` }, 'release removed');
    return { status: 200, json: { removed: releaseView(existing) } };
  });
}
