import { createServer } from 'node:http';
import type { Logger } from 'pino';
import { listen } from '../listen.ts';

// The load balancer's health check, on a port of its own (gateway.json `health`): the operator
// API stays on loopback behind its token, and HAProxy checks HTTP here rather than opening TLS
// connections to the MQTT port (each of which the gateway would log as a failed handshake).
// `GET /health`: 200 while the gateway admits new device connections, 503 otherwise, with the
// reasons as JSON. Nothing here needs a token: it says no more than a TCP check would.

export interface HealthReport {
  /** Whether new device connections are admitted now. */
  readonly admitting: boolean;
  readonly [detail: string]: unknown;
}

export interface HealthServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startHealth(
  opts: { readonly host: string; readonly port: number },
  report: () => HealthReport,
  log: Logger,
): Promise<HealthServer> {
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://health').pathname;
    if (path !== '/health' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'not-found', detail: 'this port serves GET /health only' }));
      return;
    }
    const r = report();
    const body = JSON.stringify(r);
    res.writeHead(r.admitting ? 200 : 503, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  server.requestTimeout = 5000;
  server.headersTimeout = 5000;
  const port = await listen(server, opts.port, opts.host);
  log.info({ host: opts.host, port }, 'health check listening (GET /health)');
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
