#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { VERSION } from './version.ts';

const HELP = `vigil-gateway ${VERSION}: the Vigil edge gateway (MQTT broker, verifier, fleet posture)

Usage:
  vigil-gateway init  [--dir DIR] [--host NAME]... [--port N] [--api-port N]
      Create (or complete) a gateway directory: CA and server certificate, EAR signing key,
      operator token, default policy. Devices pin DIR/ca.pem. Safe to run again.
  vigil-gateway start [--dir DIR] [--port N] [--api-port N]
      Run the gateway: MQTT over TLS 1.3 (default port 8883), operator API (default 8080).
  vigil-gateway help | --version

DIR defaults to $VIGIL_GATEWAY_DIR, else ./vigil-gateway.
`;

function fail(message: string): never {
  process.stderr.write(`vigil-gateway: ${message}\n`);
  process.exit(2);
}

function port(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    fail(`${flag} must be a port number from 0 to 65535, got "${value}"`);
  return n;
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(HELP);
    return;
  }
  if (command === '--version') {
    process.stdout.write(`${VERSION}\n`);
    return;
  }
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>>;
  try {
    parsed = parseArgs({ args: rest, options: OPTIONS, allowPositionals: false, strict: true });
  } catch (e) {
    fail(`${(e as Error).message}\n\n${HELP}`);
  }
  const v = parsed.values;
  const dir = v.dir ?? process.env.VIGIL_GATEWAY_DIR ?? 'vigil-gateway';
  const mqttPort = port(v.port, '--port');
  const apiPort = port(v['api-port'], '--api-port');
  switch (command) {
    case 'init': {
      const { initGateway } = await import('./init.ts');
      const config = initGateway({
        dir,
        hosts: v.host ?? [],
        ...(mqttPort !== undefined && { mqttPort }),
        ...(apiPort !== undefined && { apiPort }),
      });
      const token = readFileSync(config.operatorToken, 'utf8').trim();
      process.stdout.write(
        `Gateway directory ready: ${config.dir}\n\n` +
          `  CA certificate devices pin: ${config.caCert}\n` +
          `  policy:                     ${config.policy} (admission: allowlist)\n` +
          `  operator token:             ${config.operatorToken}\n\n` +
          'Next steps:\n' +
          `  1. Copy ${config.caCert} to each device and run there:\n` +
          `       vigil-agent init --gateway mqtts://<this host>:${config.mqtt.port} --ca ca.pem --tpm device:/dev/tpmrm0\n` +
          `  2. Register the EK hash each device prints (admission is by allowlist).\n` +
          `  3. Start the gateway:  vigil-gateway start --dir ${dir}\n` +
          `  Operator MQTT login: username "operator", password ${token.slice(0, 4)}… (from the token file).\n`,
      );
      return;
    }
    case 'start': {
      const { startGateway } = await import('./gateway.ts');
      const gateway = await startGateway({
        dir,
        ...(mqttPort !== undefined && { mqttPort }),
        ...(apiPort !== undefined && { apiPort }),
      });
      const stop = async (signal: string) => {
        gateway.log.info({ signal }, 'stopping');
        await gateway.close();
        process.exit(0);
      };
      process.once('SIGINT', () => void stop('SIGINT'));
      process.once('SIGTERM', () => void stop('SIGTERM'));
      return;
    }
    default:
      fail(`unknown command "${command}"\n\n${HELP}`);
  }
}

const OPTIONS = {
  dir: { type: 'string' },
  host: { type: 'string', multiple: true },
  port: { type: 'string' },
  'api-port': { type: 'string' },
} as const;

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`vigil-gateway: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
