import { DEFAULT_HEALTH_PORT } from './scale-config.ts';

// What `vigil-gateway init --database URL --redis URL [--gateway-id ID] [--health-port N]` writes
// into gateway.json. A gateway given a control bus also gets a health port, which is what the load
// balancer checks.

export interface ScaleInit {
  /** An SQLite file name (relative to the directory) or a postgres:// URL. */
  readonly database?: string;
  readonly redis?: string;
  readonly gatewayId?: string;
  readonly healthPort?: number;
}

/** The gateway.json keys these options set; none when none is given. */
export function scaleKeys(o: ScaleInit): Record<string, unknown> {
  const healthPort = o.healthPort ?? (o.redis !== undefined ? DEFAULT_HEALTH_PORT : undefined);
  return {
    ...(o.database !== undefined && { database: o.database }),
    ...(o.redis !== undefined && { redis: o.redis }),
    ...(o.gatewayId !== undefined && { gatewayId: o.gatewayId }),
    ...(healthPort !== undefined && { health: { host: '0.0.0.0', port: healthPort } }),
  };
}
