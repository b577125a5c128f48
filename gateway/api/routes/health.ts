import type { StoreHealth } from '../../store/store.ts';
import type { ApiContext } from '../context.ts';
import type { Router } from '../router.ts';

// GET /v1/health: whether the gateway can do all of its job, without the operator token, for load
// balancers (HAProxy's `option httpchk`), service managers and monitoring. Each part says whether
// it is healthy and what an operator needs to see; the gateway is `ok` when every part is, else
// `degraded` with HTTP 503, so a load balancer sends new connections to another gateway while
// this one goes on serving the devices it has. No device ids, no addresses: nothing a probe on
// the API's port should not learn. A part for another concern (a control bus, a database
// connection) is one more entry in `parts`.

export const HEALTH_PATH = '/v1/health';

export interface HealthPart {
  readonly healthy: boolean;
  /** What the body shows under the part's name. */
  readonly view: object;
}

export type HealthStatus = 'ok' | 'degraded';

export function healthBody(parts: Readonly<Record<string, HealthPart>>): {
  status: HealthStatus;
  [part: string]: unknown;
} {
  const healthy = Object.values(parts).every((p) => p.healthy);
  const body: { status: HealthStatus; [part: string]: unknown } = { status: healthy ? 'ok' : 'degraded' };
  for (const [name, part] of Object.entries(parts)) body[name] = part.view;
  return body;
}

/** The store can write; the view is StoreHealth as the API shows it. */
export function storePart(h: StoreHealth): HealthPart {
  return { healthy: h.writable, view: h };
}

export function healthRoutes(router: Router, ctx: ApiContext): void {
  router.on(
    'GET',
    HEALTH_PATH,
    () => {
      const body = healthBody({ store: storePart(ctx.gateway.store.health()) });
      return { status: body.status === 'ok' ? 200 : 503, json: body };
    },
    'public',
  );
}
