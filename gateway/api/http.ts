import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { gzip } from 'node:zlib';
import { ApiError } from './errors.ts';

// Request bodies and responses of the operator API: JSON in, JSON (or text) out.

/** Operator requests are small (a selector, a few labels); anything larger is a mistake. */
export const MAX_BODY = 64 * 1024;
/**
 * Operator requests nest two levels deep; 16 leaves room and keeps every later walk of the value
 * (validation, an error message quoting it) far from the stack's limit.
 */
export const MAX_DEPTH = 16;

/** How deep `text` nests arrays and objects, counted without parsing; stops past `limit`. */
export function jsonDepth(text: string, limit: number): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      // A backslash escapes the next character; a quote ends the string.
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      deepest = Math.max(deepest, ++depth);
      if (deepest > limit) return deepest;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return deepest;
}

/** Reads a JSON object body, refusing more than `limit` bytes without buffering them. */
export async function readJson(req: IncomingMessage, limit = MAX_BODY): Promise<Record<string, unknown>> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw tooLarge(limit);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  if (jsonDepth(text, MAX_DEPTH) > MAX_DEPTH)
    throw new ApiError(
      'bad-request',
      `the request body nests arrays or objects deeper than ${MAX_DEPTH} levels; operator requests are flat`,
    );
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ApiError(
      'bad-request',
      `the request body is not valid JSON (${(e as Error).message}); send a JSON object`,
    );
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new ApiError('bad-request', 'the request body must be a JSON object');
  return value as Record<string, unknown>;
}

function tooLarge(limit: number): ApiError {
  return new ApiError(
    'body-too-large',
    `the request body is over ${limit} bytes; operator requests are small`,
  );
}

/** Refuses keys a route does not know: a typo must not be silently ignored. */
export function onlyKeys(body: Record<string, unknown>, allowed: readonly string[], what: string): void {
  for (const k of Object.keys(body)) {
    if (!allowed.includes(k))
      throw new ApiError(
        'bad-request',
        `${what}: unknown field "${k}" (allowed: ${allowed.join(', ') || 'none'})`,
      );
  }
}

/** Bodies from this size on are gzipped for clients that accept it (the dashboard, fetch). */
const GZIP_FROM = 2048;

export function sendJson(
  res: ServerResponse,
  status: number,
  value: unknown,
  headers: OutgoingHttpHeaders = {},
): void {
  const body = Buffer.from(`${JSON.stringify(value)}\n`);
  const head = {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    vary: 'accept-encoding',
  };
  const plain = () => {
    res.writeHead(status, { ...head, 'content-length': body.length });
    res.end(body);
  };
  const accepts = /\bgzip\b/.test(String(res.req?.headers['accept-encoding'] ?? ''));
  if (body.length < GZIP_FROM || !accepts) {
    plain();
    return;
  }
  // On the thread pool: a large fleet's JSON must not hold up the broker's event loop.
  gzip(body, (err, zipped) => {
    if (res.destroyed) return;
    if (err) {
      plain();
      return;
    }
    res.writeHead(status, { ...head, 'content-encoding': 'gzip', 'content-length': zipped.length });
    res.end(zipped);
  });
}

export function sendText(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export function sendError(res: ServerResponse, err: ApiError): void {
  if (err.code === 'unauthorized') res.setHeader('www-authenticate', 'Bearer realm="vigil-gateway"');
  sendJson(res, err.status, err.toJSON());
}
