import { isIdentityHash } from '../../../shared/mcu/keys.ts';
import { isDeviceId } from '../../../shared/protocol/index.ts';
import { mcuAdmissionView } from '../../mcus/view.ts';
import type { ApiContext } from '../context.ts';
import { ApiError } from '../errors.ts';
import { onlyKeys, readJson } from '../http.ts';
import type { Router } from '../router.ts';

// The MCU allowlist (docs/protocol.md §8): identity hashes of admitted MCU sub-attesters, each for
// any device or bound to one. Appraisal asks it every round, so a change applies from the next
// round of every device: refreshPolicy rebuilds the runtime policy.

function identity(value: unknown): string {
  const s = typeof value === 'string' ? value.trim().toLowerCase() : value;
  if (typeof s !== 'string' || !isIdentityHash(s))
    throw new ApiError(
      'bad-mcu',
      `MCU identity ${JSON.stringify(value)}: expected the identity hash, 64 hex digits (SHA-256 of the MCU's identity key), as \`vigil-agent mcus\` prints it or the device view shows it`,
    );
  return s;
}

function device(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || !isDeviceId(value.toLowerCase()))
    throw new ApiError(
      'bad-mcu',
      `device ${JSON.stringify(value)}: expected a device id (24 hex digits) to bind the MCU to, or no device for any`,
    );
  return value.toLowerCase();
}

export function mcuRoutes(router: Router, ctx: ApiContext): void {
  router.on('GET', '/v1/mcus', async () => ({
    status: 200,
    json: { admitted: (await ctx.gateway.store.mcuAdmissions()).map(mcuAdmissionView) },
  }));

  router.on('POST', '/v1/mcus', async ({ req }) => {
    const body = await readJson(req);
    onlyKeys(body, ['identity', 'device', 'note'], 'MCU admission');
    const id = identity(body.identity);
    const bound = device(body.device);
    if (body.note !== undefined && typeof body.note !== 'string')
      throw new ApiError('bad-request', '"note" must be a string');
    const store = ctx.gateway.store;
    const previous = (await store.mcuAdmissions()).find((a) => a.identity === id);
    const admission = {
      identity: id,
      ...(bound !== undefined && { device: bound }),
      ...(body.note !== undefined && { note: body.note as string }),
      admittedAt: Date.now(),
    };
    store.admitMcu(admission);
    await ctx.gateway.refreshPolicy();
    ctx.gateway.log.info({ mcu: id, device: bound ?? null }, 'MCU admitted');
    return {
      status: previous ? 200 : 201,
      json: { admitted: mcuAdmissionView(admission), new: previous === undefined },
    };
  });

  router.on('DELETE', '/v1/mcus/:identity', async ({ params }) => {
    const id = identity(params.identity);
    const store = ctx.gateway.store;
    const existing = (await store.mcuAdmissions()).find((a) => a.identity === id);
    if (!existing) throw new ApiError('mcu-not-admitted', `MCU ${id} is not admitted: see GET /v1/mcus`);
    store.revokeMcu(id);
    await ctx.gateway.refreshPolicy();
    ctx.gateway.log.info({ mcu: id }, 'MCU admission revoked');
    return { status: 200, json: { revoked: mcuAdmissionView(existing) } };
  });
}
