import { DeviceTransport } from './device-transport.ts';
import { SwtpmTransport } from './swtpm-transport.ts';
import type { TpmTransport } from './transport.ts';

const ACCEPTED = 'accepted forms: device, device:/dev/tpmrm0, swtpm, swtpm:host=127.0.0.1,port=2321';
const DEFAULT_DEVICE = '/dev/tpmrm0';

export type TctiConfig = { kind: 'device'; path: string } | { kind: 'swtpm'; host: string; port: number };

/** Parses tpm2-tools TCTI syntax (`name:config`), so the same string works for both tools. */
export function parseTcti(tcti: string): TctiConfig {
  const colon = tcti.indexOf(':');
  const name = colon === -1 ? tcti : tcti.slice(0, colon);
  const config = colon === -1 ? '' : tcti.slice(colon + 1);
  if (name === 'device') return { kind: 'device', path: config === '' ? DEFAULT_DEVICE : config };
  if (name === 'swtpm') {
    let host = '127.0.0.1';
    let port = 2321;
    for (const pair of config === '' ? [] : config.split(',')) {
      const eq = pair.indexOf('=');
      const key = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      if (eq === -1 || value === '')
        throw new Error(
          `TCTI ${JSON.stringify(tcti)}: expected key=value, got ${JSON.stringify(pair)}; ${ACCEPTED}`,
        );
      if (key === 'host') host = value;
      else if (key === 'port') {
        port = Number(value);
        if (!/^\d+$/.test(value) || port < 1 || port > 65535) {
          throw new Error(`TCTI ${JSON.stringify(tcti)}: port ${JSON.stringify(value)} is not 1..65535`);
        }
      } else
        throw new Error(
          `TCTI ${JSON.stringify(tcti)}: unknown key ${JSON.stringify(key)}; swtpm takes host and port`,
        );
    }
    return { kind: 'swtpm', host, port };
  }
  throw new Error(`unknown TCTI ${JSON.stringify(tcti)}; ${ACCEPTED}`);
}

export function openTransport(tcti: string): TpmTransport {
  const config = parseTcti(tcti);
  return config.kind === 'device' ? new DeviceTransport(config.path) : new SwtpmTransport(config);
}
