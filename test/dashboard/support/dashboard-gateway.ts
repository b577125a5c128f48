import { readTokenFile } from '../../../gateway/api/auth.ts';
import type { EventBus } from '../../../gateway/events.ts';
import type { SimDevice } from '../../equipment/sim/sim-device.ts';
import { startTestGateway, type TestGateway } from '../../support/gateway.ts';

// A real test gateway (TLS broker, SQLite store, sim devices on real connections) and the
// address of its operator API, which serves the dashboard with the gateway's own event feed, EAR
// signer and viewer token. `track(device)` records the CWT each round's `result` carried, so a
// test can compare what the API serves with what the device received.

export interface DashboardGateway {
  readonly gw: TestGateway;
  /** The dashboard's address, ending in a slash. */
  readonly url: string;
  readonly operatorToken: string;
  readonly viewerToken: string;
  readonly events: EventBus;
  /** The CWT each round's `result` carried, by round id. */
  readonly ears: Map<string, Uint8Array>;
  /** Records the EARs this device receives. */
  track(device: SimDevice): void;
  stop(): Promise<void>;
}

export async function startDashboardGateway(policy: object): Promise<DashboardGateway> {
  const gw = await startTestGateway({ policy });
  const ears = new Map<string, Uint8Array>();
  try {
    const g = gw.gateway;
    const viewerToken = readTokenFile(g.config.viewerToken);
    if (!viewerToken) throw new Error(`test gateway: no ${g.config.viewerToken}`);
    return {
      gw,
      url: `http://127.0.0.1:${g.apiPort}/`,
      operatorToken: gw.operatorToken,
      viewerToken,
      events: g.events,
      ears,
      track(device) {
        device.on('result', (r) => ears.set(Buffer.from(r.round).toString('hex'), r.ear));
      },
      stop: () => gw.stop(),
    };
  } catch (e) {
    await gw.stop();
    throw e;
  }
}
