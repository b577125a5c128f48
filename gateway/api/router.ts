import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Principal } from './auth.ts';
import { ApiError } from './errors.ts';

// A small method + path router: `/v1/devices/:id` patterns, path parameters percent-decoded, and
// who may call each route.

/**
 * Who may call a route: anyone (signing in, the dashboard's files), any signed-in role, or
 * operators only. By default reading is for every role and anything else for operators, so a new
 * route that changes something is closed to viewers without anyone having to remember it.
 */
export type Access = 'public' | 'viewer' | 'operator';

export interface Request {
  readonly req: IncomingMessage;
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  /** Who is calling; absent on a public route called without credentials. */
  readonly principal?: Principal;
}

export type Reply =
  | { readonly status: number; readonly json: unknown; readonly headers?: OutgoingHttpHeaders }
  | { readonly status: number; readonly text: string; readonly type: string }
  /** The route writes the response itself (files, event streams). */
  | { readonly respond: (res: ServerResponse) => void };

export type Handler = (r: Request) => Reply | Promise<Reply>;

interface Route {
  readonly method: string;
  readonly parts: readonly string[];
  readonly handler: Handler;
  readonly access: Access;
}

const readOnly = (method: string) => method === 'GET' || method === 'HEAD';

export class Router {
  private readonly routes: Route[] = [];

  on(method: string, pattern: string, handler: Handler, access?: Access): this {
    this.routes.push({
      method,
      parts: pattern.split('/').filter(Boolean),
      handler,
      access: access ?? (readOnly(method) ? 'viewer' : 'operator'),
    });
    return this;
  }

  /** The handler, parameters and access of a request's route; 404 or 405 as ApiError otherwise. */
  match(method: string, path: string): { handler: Handler; params: Record<string, string>; access: Access } {
    const segments = path.split('/').filter(Boolean);
    let pathMatched = false;
    for (const route of this.routes) {
      const params = matchParts(route.parts, segments);
      if (!params) continue;
      pathMatched = true;
      if (route.method === method) return { handler: route.handler, params, access: route.access };
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
