import { createServer, type Server } from 'node:http';
import { checkCsrf } from '../dashboard/csrf.ts';
import { Dashboard } from '../dashboard/dashboard.ts';
import { SECURITY_HEADERS } from '../dashboard/security-headers.ts';
import { listen } from '../listen.ts';
import { VERSION } from '../version.ts';
import { bearerPrincipal, checkRole, noCredentials, tokenRoles } from './auth.ts';
import type { ApiContext } from './context.ts';
import { ApiError } from './errors.ts';
import { sendError, sendJson, sendText } from './http.ts';
import { Router } from './router.ts';
import { admissionRoutes } from './routes/admissions.ts';
import { backupRoutes } from './routes/backup.ts';
import { batchRoutes } from './routes/batches.ts';
import { deviceRoutes } from './routes/devices.ts';
import { healthRoutes } from './routes/health.ts';
import { mcuRoutes } from './routes/mcus.ts';
import { releaseRoutes } from './routes/releases.ts';
import { rolloutRoutes } from './routes/rollouts.ts';
import { roundRoutes } from './routes/rounds.ts';

// The operator API and the dashboard: plain node:http, JSON, every route but signing in and the
// dashboard's page behind a token (Prometheus sends one too: `authorization: {credentials_file:
// .../viewer.token}`) or a dashboard session; GET /v1/health answers anyone (load balancers). The operator token may do everything, the viewer
// token only read. Bound to loopback by default (gateway.json `api.host`): exposing it is a
// deliberate configuration change.

export interface ApiServer {
  readonly port: number;
  readonly server: Server;
  close(): Promise<void>;
}

export interface ApiOptions {
  readonly host: string;
  readonly port: number;
  readonly token: string;
  /** viewer.token (readTokenFile): read-only access; absent, no viewer can sign in. */
  readonly viewerToken?: string;
}

export function buildRouter(ctx: ApiContext, dashboard: Dashboard): Router {
  const router = new Router();
  router.on('GET', '/v1/status', () => ({
    status: 200,
    json: {
      version: VERSION,
      policy: ctx.gateway.policy().id,
      devices: ctx.gateway.fleet.size,
      connected: ctx.gateway.connections.devices,
      openBatches: ctx.gateway.batches.openCount,
    },
  }));
  deviceRoutes(router, ctx);
  batchRoutes(router, ctx);
  admissionRoutes(router, ctx);
  releaseRoutes(router, ctx);
  rolloutRoutes(router, ctx);
  roundRoutes(router, ctx);
  dashboard.routes(router);
  healthRoutes(router, ctx);
  backupRoutes(router, ctx);
  mcuRoutes(router, ctx);
  router.on('GET', '/metrics', () => ({
    status: 200,
    type: 'text/plain; version=0.0.4; charset=utf-8',
    text: ctx.gateway.metrics.render({
      connectedDevices: ctx.gateway.connections.devices,
      postures: (function* () {
        for (const d of ctx.gateway.fleet.all()) yield d.posture;
      })(),
      openBatches: ctx.gateway.batches.openCount,
      store: ctx.gateway.store.health(),
    }),
  }));
  return router;
}

export async function startApi(ctx: ApiContext, opts: ApiOptions): Promise<ApiServer> {
  const roleOf = tokenRoles({ operator: opts.token, ...(opts.viewerToken && { viewer: opts.viewerToken }) });
  const dashboard = new Dashboard(ctx, { roleOf, events: ctx.gateway.events });
  const router = buildRouter(ctx, dashboard);
  const server = createServer(async (req, res) => {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
    try {
      const url = new URL(req.url ?? '/', 'http://api');
      const method = req.method ?? 'GET';
      const principal = bearerPrincipal(req, roleOf) ?? dashboard.principal(req);
      let route: ReturnType<Router['match']>;
      try {
        route = router.match(method, url.pathname);
      } catch (e) {
        // Without credentials, no route is told apart from another.
        throw principal ? e : noCredentials();
      }
      checkRole(route.access, principal, `${method} ${url.pathname}`);
      if (route.access !== 'public') checkCsrf(req, principal);
      const reply = await route.handler({
        req,
        params: route.params,
        query: url.searchParams,
        ...(principal && { principal }),
      });
      if ('respond' in reply) reply.respond(res);
      else if ('json' in reply) sendJson(res, reply.status, reply.json, reply.headers);
      else sendText(res, reply.status, reply.type, reply.text);
    } catch (e) {
      if (!(e instanceof ApiError))
        ctx.gateway.log.error({ err: e, url: req.url }, 'operator API request failed');
      const err =
        e instanceof ApiError
          ? e
          : new ApiError('internal', 'the gateway failed to handle the request; see its log');
      // An unread body (refused before reading) would otherwise hold the connection.
      if (!req.complete) res.setHeader('connection', 'close');
      if (!res.headersSent) sendError(res, err);
      else res.destroy();
    }
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  const port = await listen(server, opts.port, opts.host);
  ctx.gateway.log.info({ host: opts.host, port }, 'operator API listening');
  return {
    port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        dashboard.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
