import type { IncomingMessage } from 'node:http';
import { ApiError } from './errors.ts';

// A small method + path router: `/v1/devices/:id` patterns, path parameters percent-decoded.

export interface Request {
  readonly req: IncomingMessage;
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
}

export type Reply =
  | { readonly status: number; readonly json: unknown }
  | { readonly status: number; readonly text: string; readonly type: string };

export type Handler = (r: Request) => Reply | Promise<Reply>;

interface Route {
  readonly method: string;
  readonly parts: readonly string[];
  readonly handler: Handler;
}

export class Router {
  private readonly routes: Route[] = [];

  on(method: string, pattern: string, handler: Handler): this {
    this.routes.push({ method, parts: pattern.split('/').filter(Boolean), handler });
    return this;
  }

  /** The handler and parameters for a request; 404 or 405 as ApiError otherwise. */
  match(method: string, path: string): { handler: Handler; params: Record<string, string> } {
    const segments = path.split('/').filter(Boolean);
    let pathMatched = false;
    for (const route of this.routes) {
      const params = matchParts(route.parts, segments);
      if (!params) continue;
      pathMatched = true;
      if (route.method === method) return { handler: route.handler, params };
    }
    if (pathMatched)
      throw new ApiError(
        'method-not-allowed',
        `${method} is not allowed on ${path}: see docs/api.md for the methods of each route`,
      );
    throw new ApiError('not-found', `no route ${path}: routes are under /v1/ (see docs/api.md) and /metrics`);
  }
}

function matchParts(
  parts: readonly string[],
  segments: readonly string[],
): Record<string, string> | undefined {
  if (parts.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (const [i, p] of parts.entries()) {
    const s = segments[i]!;
    if (p.startsWith(':')) {
      try {
        params[p.slice(1)] = decodeURIComponent(s);
      } catch {
        throw new ApiError('bad-request', `path segment "${s}" is not valid percent-encoding`);
      }
    } else if (p !== s) return undefined;
  }
  return params;
}
