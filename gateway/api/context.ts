import { isDeviceId } from '../../shared/protocol/index.ts';
import type { Gateway } from '../gateway.ts';
import type { EarSigner } from '../verifier/ear.ts';

/** What the API's routes work on: the running gateway's parts. */
export interface ApiContext {
  readonly gateway: Pick<
    Gateway,
    | 'fleet'
    | 'store'
    | 'connections'
    | 'batches'
    | 'rollouts'
    | 'metrics'
    | 'events'
    | 'refreshPolicy'
    | 'policy'
    | 'log'
  >;
  /** Signs the JSON form (JWT) of stored EARs. */
  readonly ear: EarSigner;
  /**
   * Several gateways: reads devices this gateway has not heard of yet from the shared store (one
   * enrolled on another gateway reaches this one's fleet through the bus a moment later).
   */
  readonly readUnknown?: (ids: readonly string[]) => Promise<void>;
}

/**
 * Makes sure the gateway knows the devices an operator names by id before it answers that one is
 * unknown. A store that cannot be read leaves the answer to what the gateway holds.
 */
export async function heardOf(ctx: ApiContext, ids: readonly string[]): Promise<void> {
  const unknown = ids.filter((id) => isDeviceId(id) && !ctx.gateway.fleet.get(id));
  if (unknown.length === 0 || !ctx.readUnknown) return;
  await ctx
    .readUnknown(unknown)
    .catch((err: Error) =>
      ctx.gateway.log.warn(
        { err: err.message, devices: unknown.length },
        'reading unknown devices from the store failed',
      ),
    );
}

export function isConnected(ctx: ApiContext, id: string): boolean {
  return ctx.gateway.connections.of(id).length > 0;
}
