import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Field, PolicyError } from './policy/json-fields.ts';
import { readScaleConfig, SCALE_KEYS, type ScaleConfig } from './scale/scale-config.ts';

// `DIR/gateway.json`: where the gateway listens and where its files are. Paths are relative to
// the directory, so a gateway directory can be moved or backed up as a whole.

export interface GatewayConfig {
  readonly dir: string;
  readonly mqtt: { readonly host: string; readonly port: number };
  readonly api: { readonly host: string; readonly port: number };
  readonly tls: {
    readonly cert: string;
    readonly key: string;
    readonly clientCa?: string;
    readonly requireClientCert: boolean;
  };
  readonly caCert: string;
  /** SQLite: the file's absolute path; PostgreSQL: its URL (see `scale.engine`). */
  readonly database: string;
  /** Store engine, the control bus and the health port: gateway/scale/scale-config.ts. */
  readonly scale: ScaleConfig;
  readonly policy: string;
  readonly earKey: string;
  readonly operatorToken: string;
  /** Read-only API and dashboard access; a gateway directory made before it has none. */
  readonly viewerToken: string;
  readonly logLevel: string;
}

export const CONFIG_FILE = 'gateway.json';
export const DEFAULT_MQTT_PORT = 8883;
export const DEFAULT_API_PORT = 8080;

/** What `vigil-gateway init` writes; every path relative to the directory. */
export function defaultConfigJson(): Record<string, unknown> {
  return {
    mqtt: { host: '0.0.0.0', port: DEFAULT_MQTT_PORT },
    api: { host: '127.0.0.1', port: DEFAULT_API_PORT },
    tls: { cert: 'server.pem', key: 'server.key', requireClientCert: false },
    caCert: 'ca.pem',
    database: 'vigil.db',
    policy: 'policy.json',
    earKey: 'ear-key.pem',
    operatorToken: 'operator.token',
    viewerToken: 'viewer.token',
    logLevel: 'info',
  };
}

const KEYS = [
  'mqtt',
  'api',
  'tls',
  'caCert',
  'database',
  'policy',
  'earKey',
  'operatorToken',
  'viewerToken',
  'logLevel',
  ...SCALE_KEYS,
];

function endpoint(f: Field | undefined, fallback: { host: string; port: number }) {
  if (!f) return fallback;
  const m = f.object(['host', 'port']);
  return {
    host: m.get('host')?.text() ?? fallback.host,
    port: m.get('port')?.integer(0, 65535) ?? fallback.port,
  };
}

export function loadConfig(dir: string): GatewayConfig {
  const abs = resolve(dir);
  const file = join(abs, CONFIG_FILE);
  if (!existsSync(file)) {
    throw new PolicyError(file, '', `no gateway here: run \`vigil-gateway init --dir ${dir}\` first`);
  }
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new PolicyError(file, '', `not valid JSON (${(e as Error).message})`);
  }
  const d = defaultConfigJson() as {
    mqtt: { host: string; port: number };
    api: { host: string; port: number };
  };
  const m = new Field(file, '', json).object(KEYS);
  const path = (key: string, fallback: string) => join(abs, m.get(key)?.text() ?? fallback);
  const tls = m.get('tls')?.object(['cert', 'key', 'clientCa', 'requireClientCert']);
  const clientCa = tls?.get('clientCa')?.text();
  const scale = readScaleConfig(m, abs, (p) => join(abs, p));
  return {
    dir: abs,
    mqtt: endpoint(m.get('mqtt'), d.mqtt),
    api: endpoint(m.get('api'), d.api),
    tls: {
      cert: join(abs, tls?.get('cert')?.text() ?? 'server.pem'),
      key: join(abs, tls?.get('key')?.text() ?? 'server.key'),
      ...(clientCa && { clientCa: join(abs, clientCa) }),
      requireClientCert: tls?.get('requireClientCert')?.boolean() ?? false,
    },
    caCert: path('caCert', 'ca.pem'),
    database: scale.database,
    scale,
    policy: path('policy', 'policy.json'),
    earKey: path('earKey', 'ear-key.pem'),
    operatorToken: path('operatorToken', 'operator.token'),
    viewerToken: path('viewerToken', 'viewer.token'),
    logLevel:
      m.get('logLevel')?.oneOf(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']) ?? 'info',
  };
}
