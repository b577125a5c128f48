import { readFileSync, writeFileSync } from 'node:fs';
import type { Logger } from 'pino';
import pino from 'pino';
import { loadConfig } from '../../gateway/config.ts';
import { type Gateway, startGateway } from '../../gateway/gateway.ts';
import type { AttestationObserver } from '../../gateway/rounds/attestation.ts';
import { initGateway } from '../../gateway/setup/init.ts';
import { freePort } from './ports.ts';
import { removeDir, tempDir } from './tmp.ts';

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
  /** Crypto pool workers (GatewayOptions.cryptoThreads); 0 makes every appraisal synchronous. */
  readonly cryptoThreads?: number;
}

export const TEST_POLICY = {
  admission: { mode: 'open' },
  rounds: { periodicMs: 60_000, deadlineMs: 2000 },
};

/** A real gateway (TLS 1.3 broker, SQLite store) in a temp directory on a free loopback port. */
export async function startTestGateway(opts: TestGatewayOptions = {}): Promise<TestGateway> {
  const dir = tempDir('vigil-gw-');
  const port = await freePort();
  const config = initGateway({ dir, hosts: ['localhost'], mqttPort: port, apiPort: 0 });
  // Loopback only: the default configuration listens on every interface.
  const json = JSON.parse(readFileSync(`${dir}/gateway.json`, 'utf8'));
  json.mqtt.host = '127.0.0.1';
  writeFileSync(`${dir}/gateway.json`, JSON.stringify(json));
  const writePolicy = (policy: object) => writeFileSync(config.policy, JSON.stringify(policy, null, 2));
  writePolicy(opts.policy ?? TEST_POLICY);
  const logger = opts.logger ?? pino({ level: process.env.VIGIL_TEST_LOG ?? 'silent' });
  const start = () =>
    startGateway({
      dir,
      mqttPort: port,
      apiPort: 0,
      logger,
      ...(opts.observe && { observe: opts.observe }),
      ...(opts.cryptoThreads !== undefined && { cryptoThreads: opts.cryptoThreads }),
    });
  let gateway: Gateway;
  try {
    gateway = await start();
  } catch (e) {
    removeDir(dir);
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
      }
    },
  };
}
