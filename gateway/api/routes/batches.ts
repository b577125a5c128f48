import { type ApiContext, heardOf } from '../context.ts';
import { ApiError } from '../errors.ts';
import { readJson } from '../http.ts';
import type { Router } from '../router.ts';
import { parseSelector, selectDevices } from '../selector.ts';

export function batchRoutes(router: Router, ctx: ApiContext): void {
  // Starts one on-demand round per selected device, on the connection it has now.
  router.on('POST', '/v1/batches', async ({ req }) => {
    const selector = parseSelector(await readJson(req));
    if ('ids' in selector) await heardOf(ctx, selector.ids);
    const ids = selectDevices(selector, ctx.gateway.fleet);
    const batch = ctx.gateway.batches.start(selector, ids);
    return { status: 201, json: await ctx.gateway.batches.progress(batch.id) };
  });

  router.on('GET', '/v1/batches/:id', async ({ params }) => {
    const progress = await ctx.gateway.batches.progress(params.id!);
    if (!progress)
      throw new ApiError(
        'batch-not-found',
        `no batch ${JSON.stringify(params.id)}: batch ids are returned by POST /v1/batches`,
      );
    return { status: 200, json: progress };
  });
}
