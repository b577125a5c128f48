import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import type { Field } from '../policy/json-fields.ts';

// The parts of gateway.json that choose the store engine and join a gateway to others:
//   "database": "vigil.db"                   SQLite, a file of this gateway's (the default)
//   "database": "postgres://user@host/db"    PostgreSQL, shared by every gateway of the fleet
//   "redis": "redis://host:6379"             the control bus between gateways (needs PostgreSQL)
//   "gatewayId": "edge-1"                    default: the host name and a digest of the directory
//   "health": {"host": "0.0.0.0", "port": 8081}   GET /health for the load balancer
//   "scale": {"claimTtlMs", "leaseMs", "requestTtlMs"}   timings, defaults below

export type StoreEngine = 'sqlite' | 'postgres';

export interface ScaleTimings {
  /** How long a device's claim outlives its gateway's last refresh (a dead gateway's devices wait this long). */
  readonly claimTtlMs: number;
  /** How long a gateway not heard from keeps its pending rounds before another adopts them. */
  readonly leaseMs: number;
  /** How long a round asked of the fleet waits for the gateway that holds the device. */
  readonly requestTtlMs: number;
}

export const DEFAULT_TIMINGS: ScaleTimings = { claimTtlMs: 15_000, leaseMs: 15_000, requestTtlMs: 120_000 };
export const DEFAULT_HEALTH_PORT = 8081;

export interface ScaleConfig {
  readonly engine: StoreEngine;
  /** SQLite: the file; PostgreSQL: the URL. */
  readonly database: string;
  readonly redis?: string;
  readonly gatewayId: string;
  readonly health?: { readonly host: string; readonly port: number };
  readonly timings: ScaleTimings;
}

export const SCALE_KEYS = ['redis', 'gatewayId', 'health', 'scale'] as const;

const GATEWAY_ID = /^[A-Za-z0-9._-]{1,64}$/;

export function isPostgresUrl(s: string): boolean {
  return /^postgres(ql)?:\/\//i.test(s);
}

/** A gateway's id when gateway.json names none: stable across restarts of the same directory. */
export function defaultGatewayId(dir: string): string {
  const host =
    hostname()
      .replace(/[^A-Za-z0-9._-]/g, '-')
      .slice(0, 40) || 'gateway';
  return `${host}-${createHash('sha256').update(dir).digest('hex').slice(0, 8)}`;
}

function url(f: Field, schemes: readonly string[], what: string): string {
  const s = f.text();
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    f.fail(`${what} (${schemes.map((x) => `${x}//…`).join(' or ')})`);
  }
  if (!schemes.includes(u.protocol)) f.fail(`${what} (${schemes.map((x) => `${x}//…`).join(' or ')})`);
  return s;
}

/** Reads the store and scale-out keys of gateway.json (`m`: its top-level fields). */
export function readScaleConfig(
  m: Map<string, Field>,
  dir: string,
  resolvePath: (p: string) => string,
): ScaleConfig {
  const db = m.get('database');
  const dbText = db?.text() ?? 'vigil.db';
  const engine: StoreEngine = isPostgresUrl(dbText) ? 'postgres' : 'sqlite';
  const database =
    engine === 'postgres'
      ? url(db!, ['postgres:', 'postgresql:'], 'a postgres:// URL or an SQLite file name')
      : resolvePath(dbText);
  const redisField = m.get('redis');
  const redis = redisField && url(redisField, ['redis:', 'rediss:', 'unix:'], 'a redis:// URL');
  if (redis && engine !== 'postgres')
    throw redisField.error(
      'several gateways share their state in PostgreSQL: set "database" to a postgres:// URL too (an SQLite file belongs to one gateway)',
    );
  const idField = m.get('gatewayId');
  const gatewayId = idField?.text() ?? defaultGatewayId(dir);
  if (!GATEWAY_ID.test(gatewayId)) idField!.fail('1 to 64 letters, digits, ".", "_" or "-"');
  const h = m.get('health')?.object(['host', 'port']);
  const health = h && {
    host: h.get('host')?.text() ?? '0.0.0.0',
    port: h.get('port')?.integer(0, 65535) ?? DEFAULT_HEALTH_PORT,
  };
  const s = m.get('scale')?.object(['claimTtlMs', 'leaseMs', 'requestTtlMs']);
  const ms = (key: keyof ScaleTimings) => s?.get(key)?.integer(200, 3_600_000) ?? DEFAULT_TIMINGS[key];
  return {
    engine,
    database,
    ...(redis && { redis }),
    gatewayId,
    ...(health && { health }),
    timings: { claimTtlMs: ms('claimTtlMs'), leaseMs: ms('leaseMs'), requestTtlMs: ms('requestTtlMs') },
  };
}
