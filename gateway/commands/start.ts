import { startGateway } from '../gateway.ts';
import { parse } from './args.ts';
import { gatewayDir } from './client.ts';
import { port } from './init.ts';

/** Runs until SIGINT or SIGTERM; resolves only when the gateway is up. */
export async function start(args: string[]): Promise<number | undefined> {
  const { values: v } = parse(
    args,
    { dir: { type: 'string' }, port: { type: 'string' }, 'api-port': { type: 'string' } },
    false,
  );
  const mqttPort = port(v.port, '--port');
  const apiPort = port(v['api-port'], '--api-port');
  const gateway = await startGateway({
    dir: gatewayDir(v.dir),
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
  // No exit code: the process lives on with the gateway.
  return undefined;
}
