import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { ApiError } from '../api/errors.ts';

// The dashboard's files as the gateway serves them, all in memory (a few tens of KB), gzipped
// once. Where they come from:
// - a gateway run from its sources (tsx: tests, `npm start`) builds them with esbuild on the
//   first request for them, so they can never be stale and a fresh clone needs no build step;
//   gateways that nobody looks at (most tests) never pay for the build;
// - an installed gateway (dist/) reads what `npm run build` wrote next to this module, public/.
// Hashed file names never change content: cached for a year. index.html names the current ones:
// revalidated on every load.

export interface Asset {
  readonly type: string;
  readonly body: Buffer;
  readonly gzip: Buffer;
  readonly etag: string;
  /** Content-hashed name: cacheable forever. */
  readonly immutable: boolean;
}

export interface Assets {
  readonly index: Asset;
  readonly files: ReadonlyMap<string, Asset>;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

function asset(name: string, bytes: Uint8Array, immutable: boolean): Asset {
  const body = Buffer.from(bytes);
  return {
    type: TYPES[extname(name)] ?? 'application/octet-stream',
    body,
    gzip: gzipSync(body, { level: 9 }),
    etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
    immutable,
  };
}

function assemble(index: string, files: readonly { name: string; bytes: Uint8Array }[]): Assets {
  return {
    index: asset('index.html', Buffer.from(index), false),
    files: new Map(files.map((f) => [f.name, asset(f.name, f.bytes, true)])),
  };
}

async function load(): Promise<Assets> {
  if (existsSync(fileURLToPath(new URL('./app/main.tsx', import.meta.url)))) {
    const { buildDashboard } = await import('./build.ts');
    const built = await buildDashboard();
    return assemble(built.index, built.files);
  }
  const dir = fileURLToPath(new URL('./public/', import.meta.url));
  if (!existsSync(`${dir}manifest.json`))
    throw new ApiError(
      'internal',
      `the dashboard is not built (no ${dir}manifest.json): run \`npm run build\`, which writes it`,
    );
  const manifest = JSON.parse(readFileSync(`${dir}manifest.json`, 'utf8')) as { files: string[] };
  return assemble(
    readFileSync(`${dir}index.html`, 'utf8'),
    manifest.files.map((name) => ({ name, bytes: readFileSync(`${dir}assets/${name}`) })),
  );
}

let loading: Promise<Assets> | undefined;

/** The dashboard's files, loaded (or built) once per process; a failed build is retried. */
export function dashboardAssets(): Promise<Assets> {
  loading ??= load().catch((e: unknown) => {
    loading = undefined;
    throw e;
  });
  return loading;
}

export function sendAsset(req: IncomingMessage, res: ServerResponse, a: Asset): void {
  const headers: Record<string, string | number> = {
    'content-type': a.type,
    'cache-control': a.immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
    etag: a.etag,
    vary: 'accept-encoding',
  };
  if (req.headers['if-none-match'] === a.etag) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  const gzip = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
  const body = gzip ? a.gzip : a.body;
  res.writeHead(200, {
    ...headers,
    'content-length': body.length,
    ...(gzip && { 'content-encoding': 'gzip' }),
  });
  res.end(body);
}
