import { mkdirSync } from 'node:fs';
import { type Child, startChild } from './child.ts';
import { benchGatewayDir } from './gateway-dir.ts';
import { startMosquitto } from './peers/mosquitto.ts';
import { freePort } from './ports.ts';

// What a fleet round runs against (figure 2): our gateway, and side by side, in the same run on
// the same box, a plain aedes TLS broker and mosquitto, each with a stand-in responder doing no
// attestation (bench/peers/). Each is started in processes of its own so /proc gives its CPU and
// memory alone, and each answers the same IPC commands: stats, gc, round, close.

export type ServerKind = 'vigil' | 'aedes' | 'mosquitto';

export const SERVER_LABEL: Readonly<Record<ServerKind, string>> = {
  vigil: 'vigil gateway',
  aedes: 'plain aedes TLS broker, no appraisal',
  mosquitto: 'mosquitto + responder client, no appraisal',
};

export interface FleetServer {
  readonly kind: ServerKind;
  readonly url: string;
  readonly caPath: string;
  /** The broker's process: its RSS is the memory per connection. */
  readonly brokerPid: number;
  /** The responder's process, when it is not the broker's (mosquitto): its CPU counts too. */
  readonly responderPid?: number;
  /** The process that answers IPC (the gateway, the aedes process, the mosquitto responder). */
  readonly control: Child;
  stop(): Promise<void>;
}

export async function startFleetServer(
  kind: ServerKind,
  dir: string,
  opts: { earBytes: number; gatewayNodeArgs?: readonly string[] },
): Promise<FleetServer> {
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const gw = benchGatewayDir(dir, { host: '127.0.0.1', port });
  const url = `mqtts://localhost:${port}`;
  const tlsFiles = { key: gw.keyPath, cert: gw.certPath };
  if (kind === 'vigil') {
    const control = await startChild('gateway-process.ts', [dir], { nodeArgs: opts.gatewayNodeArgs ?? [] });
    return { kind, url, caPath: gw.caPath, brokerPid: control.pid, control, stop: () => control.stop() };
  }
  if (kind === 'aedes') {
    const control = await startChild('peers/aedes-process.ts', [
      tlsFiles.key,
      tlsFiles.cert,
      String(opts.earBytes),
      String(port),
    ]);
    return { kind, url, caPath: gw.caPath, brokerPid: control.pid, control, stop: () => control.stop() };
  }
  const broker = await startMosquitto({ dir, port, keyPath: tlsFiles.key, certPath: tlsFiles.cert });
  try {
    const control = await startChild('peers/mosquitto-responder.ts', [url, gw.caPath, String(opts.earBytes)]);
    return {
      kind,
      url,
      caPath: gw.caPath,
      brokerPid: broker.pid,
      responderPid: control.pid,
      control,
      async stop() {
        await control.stop();
        await broker.stop();
      },
    };
  } catch (e) {
    await broker.stop();
    throw e;
  }
}
