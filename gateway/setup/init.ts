import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CONFIG_FILE, defaultConfigJson, type GatewayConfig, loadConfig } from '../config.ts';
import { writeDefaultPolicy } from '../policy/policy.ts';
import { type ScaleInit, scaleKeys } from '../scale/scale-init.ts';
import { createPki } from './pki.ts';

export interface InitOptions extends ScaleInit {
  readonly dir: string;
  /** Names and addresses devices use to reach the gateway (server certificate SANs). */
  readonly hosts: readonly string[];
  readonly mqttPort?: number;
  readonly apiPort?: number;
}

function writeOnce(path: string, contents: string | Buffer, mode: number): boolean {
  if (existsSync(path)) return false;
  writeFileSync(path, contents, { mode });
  return true;
}

/**
 * Creates a gateway directory, or completes one: what exists is kept (the CA devices pin, the
 * EAR key relying parties trust, the operator and viewer tokens, the policy), the server certificate is
 * reissued for the names given. Safe to run again.
 */
export function initGateway(opts: InitOptions): GatewayConfig {
  const dir = resolve(opts.dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const configPath = join(dir, CONFIG_FILE);
  const scale = scaleKeys(opts);
  if (!existsSync(configPath)) {
    const json = defaultConfigJson() as { mqtt: { port: number }; api: { port: number } };
    if (opts.mqttPort !== undefined) json.mqtt.port = opts.mqttPort;
    if (opts.apiPort !== undefined) json.api.port = opts.apiPort;
    writeFileSync(configPath, `${JSON.stringify({ ...json, ...scale }, null, 2)}\n`);
  } else if (Object.keys(scale).length > 0) {
    // Joining an existing gateway to a fleet (or moving its store) edits just those keys.
    const json = JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
    writeFileSync(configPath, `${JSON.stringify({ ...json, ...scale }, null, 2)}\n`);
  }
  const config = loadConfig(dir);
  createPki(dir, opts.hosts);
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  writeOnce(config.earKey, privateKey.export({ format: 'pem', type: 'pkcs8' }), 0o600);
  writeOnce(config.operatorToken, `${randomBytes(24).toString('base64url')}\n`, 0o600);
  // Read-only access for people who watch the fleet (the dashboard, Prometheus): handing it out
  // never lets anyone trigger rounds or change the allowlist.
  writeOnce(config.viewerToken, `${randomBytes(24).toString('base64url')}\n`, 0o600);
  if (!existsSync(config.policy)) writeDefaultPolicy(config.policy);
  return config;
}
