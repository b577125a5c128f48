import type { Gateway } from '../gateway.ts';
import type { BatchTracker } from '../rounds/batches.ts';
import type { GatewayMetrics } from './metrics.ts';

/** What the API's routes work on: the running gateway's parts. */
export interface ApiContext {
  readonly gateway: Pick<
    Gateway,
    'fleet' | 'store' | 'sessionsOf' | 'sessions' | 'refreshPolicy' | 'policy' | 'log'
  >;
  readonly batches: BatchTracker;
  readonly metrics: GatewayMetrics;
}

export function isConnected(ctx: ApiContext, id: string): boolean {
  return ctx.gateway.sessionsOf(id).some((s) => !s.closed);
}

/** Devices with at least one live connection. */
export function connectedCount(ctx: ApiContext): number {
  const ids = new Set<string>();
  for (const s of ctx.gateway.sessions()) if (!s.closed) ids.add(s.deviceId);
  return ids.size;
}
