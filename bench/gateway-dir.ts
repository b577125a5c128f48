import { readFileSync, writeFileSync } from 'node:fs';
import { loadConfig } from '../gateway/config.ts';
import { initGateway } from '../gateway/setup/init.ts';
import { SIM_SOFTWARE, softwareReference } from '../test/equipment/sim/attester.ts';

// A gateway directory for benchmarks: open admission, sim allowed (bench only), periodic rounds
// rare enough not to fall inside a measurement unless a figure asks for them.

export interface BenchGatewayDir {
  readonly dir: string;
  readonly caPath: string;
  /** The gateway's TLS key and certificate (the peers of figure 2 serve the same). */
  readonly keyPath: string;
  readonly certPath: string;
  readonly port: number;
  readonly host: string;
  readonly url: string;
}

export function benchGatewayDir(
  dir: string,
  opts: { host: string; port: number; hosts?: readonly string[]; policy?: object; software?: object[] },
): BenchGatewayDir {
  initGateway({
    dir,
    hosts: ['localhost', opts.host, ...(opts.hosts ?? [])],
    mqttPort: opts.port,
    apiPort: 0,
  });
  const json = JSON.parse(readFileSync(`${dir}/gateway.json`, 'utf8'));
  json.mqtt.host = opts.host;
  json.mqtt.port = opts.port;
  if (json.api) json.api.port = 0;
  writeFileSync(`${dir}/gateway.json`, JSON.stringify(json, null, 2));
  const config = loadConfig(dir);
  writeFileSync(
    config.policy,
    JSON.stringify(
      opts.policy ?? {
        admission: { mode: 'open' },
        allowSim: true,
        referenceValues: { software: [softwareReference(SIM_SOFTWARE), ...(opts.software ?? [])] },
        rounds: { periodicMs: 3_600_000, deadlineMs: 60_000 },
      },
      null,
      2,
    ),
  );
  return {
    dir,
    caPath: config.caCert,
    keyPath: config.tls.key,
    certPath: config.tls.cert,
    port: opts.port,
    host: opts.host,
    url: `mqtts://${opts.host}:${opts.port}`,
  };
}
