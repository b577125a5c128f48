import { isDeviceId } from '../../../shared/protocol/index.ts';
import { show } from '../../policy/json-fields.ts';
import { allowlistEntry } from '../../store/allowlist.ts';
import type { ApiContext } from '../context.ts';
import { ApiError } from '../errors.ts';
import { onlyKeys, readJson } from '../http.ts';
import type { Router } from '../router.ts';

// The admission allowlist (policy mode `allowlist`): EK hashes or device ids. Admission runs on
// every hello, so a revoked device is refused at its next connection; under an allowlist its
// current connections are also closed at once.

function entry(value: unknown): string {
  if (typeof value !== 'string')
    throw new ApiError(
      'bad-ek',
      `"ek" must be a string: an EK hash (64 hex digits) or a device id (24), got ${show(value)}`,
    );
  try {
    return allowlistEntry(value);
  } catch (e) {
    throw new ApiError(
      'bad-ek',
      `${(e as Error).message}; \`vigil-gateway admit --ek FILE\` computes the hash from the EK public key`,
    );
  }
}

export function admissionRoutes(router: Router, ctx: ApiContext): void {
  router.on('GET', '/v1/admissions', async () => ({
    status: 200,
    json: { admitted: await ctx.gateway.store.admitted() },
  }));

  router.on('POST', '/v1/admissions', async ({ req }) => {
    const body = await readJson(req);
    onlyKeys(body, ['ek', 'note'], 'admission');
    const e = entry(body.ek);
    if (body.note !== undefined && typeof body.note !== 'string')
      throw new ApiError('bad-request', '"note" must be a string');
    const already = (await ctx.gateway.store.admitted()).includes(e);
    ctx.gateway.store.admit(e, body.note as string | undefined);
    await ctx.gateway.refreshPolicy();
    ctx.gateway.log.info({ entry: e }, 'admitted');
    return { status: already ? 200 : 201, json: { admitted: e, new: !already } };
  });

  // Revoking a device id also revokes the EK hash of that device, and the reverse: either entry
  // alone would still admit it.
  router.on('DELETE', '/v1/admissions/:entry', async ({ params }) => {
    const e = entry(params.entry);
    const store = ctx.gateway.store;
    const device = isDeviceId(e) ? ctx.gateway.fleet.get(e) : ctx.gateway.fleet.get(e.slice(0, 24));
    const related = new Set([
      e,
      ...(device ? [device.id, device.ekHash] : isDeviceId(e) ? [] : [e.slice(0, 24)]),
    ]);
    const listed = (await store.admitted()).filter((a) => related.has(a));
    if (listed.length === 0)
      throw new ApiError('not-admitted', `${e} is not on the allowlist: see GET /v1/admissions`);
    for (const a of listed) store.revoke(a);
    await ctx.gateway.refreshPolicy();
    // Under an allowlist, revoking is the operator saying "no longer this device": its live
    // connections end now rather than at their next hello. (Other modes do not consult the list.)
    const id = device?.id ?? (isDeviceId(e) ? e : e.slice(0, 24));
    const cut =
      ctx.gateway.policy().admission.mode === 'allowlist' ? [...ctx.gateway.connections.of(id)] : [];
    for (const c of cut) c.link.disconnect();
    ctx.gateway.log.info({ revoked: listed, disconnected: cut.length }, 'admission revoked');
    return { status: 200, json: { revoked: listed, disconnected: cut.length } };
  });
}
