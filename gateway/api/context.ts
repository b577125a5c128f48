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
}

export function isConnected(ctx: ApiContext, id: string): boolean {
  return ctx.gateway.connections.of(id).length > 0;
}
