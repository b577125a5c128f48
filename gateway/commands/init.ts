import { readFileSync } from 'node:fs';
import { initGateway } from '../setup/init.ts';
import { parse, UsageError } from './args.ts';
import { gatewayDir } from './client.ts';

export function port(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new UsageError(`${flag} must be a port number from 0 to 65535, got "${value}"`);
  return n;
}

export async function init(args: string[]): Promise<number> {
  const { values: v } = parse(
    args,
    {
      dir: { type: 'string' },
      host: { type: 'string', multiple: true },
      port: { type: 'string' },
      'api-port': { type: 'string' },
      database: { type: 'string' },
      redis: { type: 'string' },
      'gateway-id': { type: 'string' },
      'health-port': { type: 'string' },
    },
    false,
  );
  const dir = gatewayDir(v.dir);
  const mqttPort = port(v.port, '--port');
  const apiPort = port(v['api-port'], '--api-port');
  const healthPort = port(v['health-port'], '--health-port');
  const config = initGateway({
    dir,
    hosts: v.host ?? [],
    ...(mqttPort !== undefined && { mqttPort }),
    ...(apiPort !== undefined && { apiPort }),
    ...(v.database !== undefined && { database: v.database }),
    ...(v.redis !== undefined && { redis: v.redis }),
    ...(v['gateway-id'] !== undefined && { gatewayId: v['gateway-id'] }),
    ...(healthPort !== undefined && { healthPort }),
  });
  const token = readFileSync(config.operatorToken, 'utf8').trim();
  process.stdout.write(
    `Gateway directory ready: ${config.dir}\n\n` +
      `  CA certificate devices pin: ${config.caCert}\n` +
      `  policy:                     ${config.policy} (admission: allowlist)\n` +
      `  operator token:             ${config.operatorToken}\n` +
      `  viewer token (read-only):   ${config.viewerToken}\n` +
      `  dashboard:                  http://${config.api.host}:${config.api.port}/ (sign in with a token)\n\n` +
      'Next steps:\n' +
      `  1. Copy ${config.caCert} to each device and run there:\n` +
      `       vigil-agent init --gateway mqtts://<this host>:${config.mqtt.port} --ca ca.pem --tpm device:/dev/tpmrm0\n` +
      `  2. Register the EK hash each device prints:  vigil-gateway admit --ek HASH --dir ${dir}\n` +
      `  3. Start the gateway:  vigil-gateway start --dir ${dir}\n` +
      `  Operator MQTT login: username "operator", password ${token.slice(0, 4)}… (from the token file).\n`,
  );
  return 0;
}
