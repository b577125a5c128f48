import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { VERSION } from '../version.ts';
import { bearerCheck } from './auth.ts';
import type { ApiContext } from './context.ts';
import { ApiError } from './errors.ts';
import { sendError, sendJson, sendText } from './http.ts';
import { Router } from './router.ts';
import { admissionRoutes } from './routes/admissions.ts';
import { batchRoutes } from './routes/batches.ts';
import { deviceRoutes } from './routes/devices.ts';
import { releaseRoutes } from './routes/releases.ts';
import { rolloutRoutes } from './routes/rollouts.ts';
import { roundRoutes } from './routes/rounds.ts';

// The operator API: plain node:http, JSON, every route behind the operator token (Prometheus
// sends it too: `authorization: {credentials_file: .../operator.token}`). Bound to loopback by
// default (gateway.json `api.host`): exposing it is a deliberate configuration change.

export interface ApiServer {
  readonly port: number;
  readonly server: Server;
  close(): Promise<void>;
}

export interface ApiOptions {
  readonly host: string;
  readonly port: number;
  readonly token: string;
}

export function buildRouter(ctx: ApiContext): Router {
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
  router.on('GET', '/metrics', () => ({
    status: 200,
    type: 'text/plain; version=0.0.4; charset=utf-8',
    text: ctx.gateway.metrics.render({
      connectedDevices: ctx.gateway.connections.devices,
      postures: (function* () {
        for (const d of ctx.gateway.fleet.all()) yield d.posture;
      })(),
      openBatches: ctx.gateway.batches.openCount,
    }),
  }));
  return router;
}

export async function startApi(ctx: ApiContext, opts: ApiOptions): Promise<ApiServer> {
  const router = buildRouter(ctx);
  const authorize = bearerCheck(opts.token);
  const server = createServer(async (req, res) => {
    try {
      const url = new URL(req.url ?? '/', 'http://api');
      authorize(req);
      const { handler, params } = router.match(req.method ?? 'GET', url.pathname);
      const reply = await handler({ req, params, query: url.searchParams });
      if ('json' in reply) sendJson(res, reply.status, reply.json);
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
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  ctx.gateway.log.info({ host: opts.host, port }, 'operator API listening');
  return {
    port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
