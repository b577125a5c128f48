import { readFileSync } from 'node:fs';
import { type GatewayConfig, loadConfig } from '../config.ts';
import { readRunFile } from '../run-file.ts';

// How an operator command reaches the running gateway: the API address and the operator token
// from the gateway directory (gateway.json `api`, operator.token), or `--api URL` when the
// gateway was started with another port (`start --api-port`) or is reached through a tunnel.

/** backup and restore work on an SQLite store; a PostgreSQL one has its own tools. */
export function requireSqliteStore(config: GatewayConfig, command: 'backup' | 'restore'): void {
  if (config.scale.engine !== 'sqlite')
    throw new CommandError(
      `${config.dir} keeps its store in PostgreSQL: ${command} copies an SQLite store; use pg_dump and pg_restore (docs/operations.md)`,
      `${command}-unsupported`,
    );
}

export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    message: string,
    /** The API's error code, when the API refused the request. */
    readonly code?: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

export interface ApiClient {
  readonly base: string;
  request<T>(method: string, path: string, body?: unknown): Promise<T>;
}

export interface Target {
  readonly dir: string;
  readonly api?: string | undefined;
}

export function gatewayDir(dir: string | undefined): string {
  return dir ?? process.env.VIGIL_GATEWAY_DIR ?? 'vigil-gateway';
}

export function apiClient(target: Target): ApiClient {
  const config = loadConfig(target.dir);
  const token = readFileSync(config.operatorToken, 'utf8').trim();
  // The running gateway's own record of its port wins over the configured one (`--api-port`).
  const running = readRunFile(config.dir);
  const bind = running?.apiHost ?? config.api.host;
  // A wildcard bind address is reached on loopback.
  const host = ['0.0.0.0', '::', ''].includes(bind) ? '127.0.0.1' : bind;
  const port = running?.apiPort ?? config.api.port;
  const base = (
    target.api ??
    process.env.VIGIL_GATEWAY_API ??
    `http://${host.includes(':') ? `[${host}]` : host}:${port}`
  ).replace(/\/+$/, '');
  return {
    base,
    async request<T>(method: string, path: string, body?: unknown): Promise<T> {
      let res: Response;
      try {
        res = await fetch(`${base}${path}`, {
          method,
          headers: {
            authorization: `Bearer ${token}`,
            ...(body !== undefined && { 'content-type': 'application/json' }),
          },
          ...(body !== undefined && { body: JSON.stringify(body) }),
          signal: AbortSignal.timeout(30_000),
        });
      } catch (e) {
        const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
        throw new CommandError(
          `cannot reach the gateway's operator API at ${base} (${cause}): is \`vigil-gateway start --dir ${target.dir}\` running? If it listens elsewhere, pass --api URL`,
        );
      }
      const text = await res.text();
      let json: unknown;
      try {
        json = text === '' ? undefined : JSON.parse(text);
      } catch {
        throw new CommandError(
          `${method} ${path}: the API answered ${res.status} with non-JSON: ${text.slice(0, 200)}`,
        );
      }
      if (!res.ok) {
        const err = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
        throw new CommandError(
          err?.message ?? `HTTP ${res.status}`,
          err?.code ?? `http-${res.status}`,
          res.status,
        );
      }
      return json as T;
    },
  };
}
