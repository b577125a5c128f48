import { readFileSync, writeFileSync } from 'node:fs';
import type { Logger } from 'pino';
import pino from 'pino';
import { loadConfig } from '../../gateway/config.ts';
import { type Gateway, startGateway } from '../../gateway/gateway.ts';
import type { AttestationObserver } from '../../gateway/rounds/attestation.ts';
import { initGateway } from '../../gateway/setup/init.ts';
import { PostgresStore } from '../../gateway/store/postgres.ts';
import { SqliteStore } from '../../gateway/store/sqlite.ts';
import type { Store } from '../../gateway/store/store.ts';
import { freePort } from './ports.ts';
import { sharedPostgres } from './postgres.ts';
import { removeDir, tempDir } from './tmp.ts';

/**
 * The store engine the test gateways use: `VIGIL_TEST_DATABASE=postgres` runs them on PostgreSQL
 * (one server per test process, a database per gateway), anything else on SQLite (the default).
 */
export const TEST_ENGINE: 'sqlite' | 'postgres' =
  process.env.VIGIL_TEST_DATABASE === 'postgres' ? 'postgres' : 'sqlite';

/** A fresh database for one test gateway when the suite runs on PostgreSQL. */
async function testDatabase(): Promise<{ url: string; drop: () => Promise<void> } | undefined> {
  if (TEST_ENGINE !== 'postgres') return undefined;
  const server = await sharedPostgres();
  const url = await server.createDatabase('gw');
  return { url, drop: () => server.dropDatabase(url) };
}

/** A store of the engine under test, on a fresh database: SQLite in a temp dir, or PostgreSQL. */
export async function openTestStore(): Promise<{ store: Store; close(): Promise<void> }> {
  const database = await testDatabase();
  if (database) {
    const store = await PostgresStore.open({ url: database.url, gatewayId: 'test' });
    return {
      store,
      async close() {
        await store.close();
        await database.drop();
      },
    };
  }
  const dir = tempDir('store-');
  const store = new SqliteStore(`${dir}/vigil.db`);
  return {
    store,
    async close() {
      await store.close();
      removeDir(dir);
    },
  };
}

/**
 * Says, once per file, that a test exercises the SQLite engine itself whatever VIGIL_TEST_DATABASE
 * asks, so that a PostgreSQL run does not look like it covered it.
 */
export function sqliteSpecific(file: string, what: string): void {
  if (TEST_ENGINE === 'postgres')
    process.stdout.write(`\n  ${file}: SQLite-specific (${what}); runs on SQLite in this PostgreSQL run\n`);
}

export interface TestGateway {
  readonly dir: string;
  readonly port: number;
  readonly url: string;
  readonly caPath: string;
  readonly ca: Buffer;
  readonly operatorToken: string;
  readonly gateway: Gateway;
  /** Replaces policy.json (the running gateway reloads it; call gateway.refreshPolicy to be sure). */
  writePolicy(policy: object): void;
  /** Stops the gateway and starts a new one on the same directory and port. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface TestGatewayOptions {
  /** policy.json contents; default: open admission, sim refused, 1 s deadlines, slow periodic rounds. */
  readonly policy?: object;
  readonly logger?: Logger;
  readonly observe?: AttestationObserver;
  /** Runs after `init`, before the gateway starts: may change the directory and gateway.json. */
  readonly prepare?: (dir: string, gatewayJson: Record<string, unknown>) => void;
  /** A test of the SQLite engine itself (see sqliteSpecific): SQLite whatever TEST_ENGINE says. */
  readonly sqlite?: boolean;
}

export const TEST_POLICY = {
  admission: { mode: 'open' },
  rounds: { periodicMs: 60_000, deadlineMs: 2000 },
};

/** A real gateway (TLS 1.3 broker; SQLite store, or PostgreSQL: see TEST_ENGINE) in a temp directory on a free loopback port. */
export async function startTestGateway(opts: TestGatewayOptions = {}): Promise<TestGateway> {
  const dir = tempDir('vigil-gw-');
  const port = await freePort();
  const config = initGateway({ dir, hosts: ['localhost'], mqttPort: port, apiPort: 0 });
  // Loopback only: the default configuration listens on every interface.
  const json = JSON.parse(readFileSync(`${dir}/gateway.json`, 'utf8'));
  json.mqtt.host = '127.0.0.1';
  const database = opts.sqlite ? undefined : await testDatabase();
  if (database) json.database = database.url;
  opts.prepare?.(dir, json);
  writeFileSync(`${dir}/gateway.json`, JSON.stringify(json));
  const writePolicy = (policy: object) => writeFileSync(config.policy, JSON.stringify(policy, null, 2));
  writePolicy(opts.policy ?? TEST_POLICY);
  const logger = opts.logger ?? pino({ level: process.env.VIGIL_TEST_LOG ?? 'silent' });
  const start = () =>
    startGateway({ dir, mqttPort: port, apiPort: 0, logger, ...(opts.observe && { observe: opts.observe }) });
  let gateway: Gateway;
  try {
    gateway = await start();
  } catch (e) {
    removeDir(dir);
    await database?.drop();
    throw e;
  }
  const cfg = loadConfig(dir);
  return {
    dir,
    port,
    url: `mqtts://localhost:${port}`,
    caPath: cfg.caCert,
    ca: readFileSync(cfg.caCert),
    operatorToken: readFileSync(cfg.operatorToken, 'utf8').trim(),
    get gateway() {
      return gateway;
    },
    writePolicy,
    async restart() {
      await gateway.close();
      gateway = await start();
    },
    async stop() {
      try {
        await gateway.close();
      } finally {
        removeDir(dir);
        await database?.drop();
      }
    },
  };
}
