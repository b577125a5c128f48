import { readFileSync } from 'node:fs';
import { readTokenFile } from '../../../gateway/api/auth.ts';
import type { ApiContext } from '../../../gateway/api/context.ts';
import { GatewayMetrics } from '../../../gateway/api/metrics.ts';
import { type ApiServer, startApi } from '../../../gateway/api/server.ts';
import { roundView } from '../../../gateway/api/views.ts';
import { EventBus } from '../../../gateway/events.ts';
import type { PostureNotice } from '../../../gateway/posture/fleet.ts';
import type { AttestationObserver } from '../../../gateway/rounds/attestation.ts';
import { BatchTracker } from '../../../gateway/rounds/batches.ts';
import type { PostureStore } from '../../../gateway/store/store.ts';
import { EarSigner } from '../../../gateway/verifier/ear.ts';
import type { SimDevice } from '../../equipment/sim/sim-device.ts';
import { startTestGateway, type TestGateway } from '../../support/gateway.ts';
import { connectOperator } from '../../support/operator.ts';

// A real test gateway (TLS broker, SQLite store, sim devices on real connections) with the API
// server the dashboard talks to, wired as the gateway will wire it: an EventFeed of posture
// changes and rounds, the EAR signer, the viewer token. Until gateway.ts passes these to its own
// API server, this starts a second one on the same gateway with them:
// - rounds come from the gateway's AttestationObserver hook, and a BatchTracker of our own
//   observes them for on-demand batches (POST /v1/batches on this server);
// - posture changes come as the gateway publishes them for back ends: retained JSON on
//   vigil/v1/fleet/{id}, read here by an operator MQTT client;
// - each round's EAR comes from the `result` the sim device received (the store does not keep
//   EARs yet): `track(device)` records them, and the store this API reads answers `round(id)`
//   with the CWT the device got.

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

/** The store as the API reads it, with each round's EAR attached when a device received one. */
function withEars(store: PostureStore, ears: ReadonlyMap<string, Uint8Array>): PostureStore {
  return new Proxy(store, {
    get(target, prop) {
      if (prop === 'round')
        return (id: string) => {
          const r = target.round(id);
          const ear = ears.get(id);
          return r && ear ? { ...r, ear } : r;
        };
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

export async function startDashboardGateway(policy: object): Promise<DashboardGateway> {
  const events = new EventBus((err) => {
    throw err;
  });
  const ears = new Map<string, Uint8Array>();
  let batches: BatchTracker | undefined;
  const publishRound: AttestationObserver['roundIssued'] = (r) =>
    events.publish({ kind: 'round', device: r.deviceId, round: roundView(r) });
  const observe: AttestationObserver = {
    roundIssued: publishRound,
    roundSettled: (r) => {
      batches?.roundSettled(r);
      publishRound(r);
    },
  };
  const gw = await startTestGateway({ policy, observe });
  let api: ApiServer | undefined;
  let operator: Awaited<ReturnType<typeof connectOperator>> | undefined;
  const stop = async () => {
    await api?.close();
    batches?.close();
    await operator?.close();
    await gw.stop();
  };
  try {
    const g = gw.gateway;
    batches = new BatchTracker({
      store: g.store,
      sessionsOf: (id) => g.sessionsOf(id),
      startRound: (session, reason, batchId) => g.attestation.startRound(session, reason, batchId),
      log: g.log,
    });
    operator = await connectOperator(gw.url, gw.ca, gw.operatorToken);
    operator.client.on('message', (_topic, payload) => {
      events.publish({ kind: 'posture', notice: JSON.parse(payload.toString()) as PostureNotice });
    });
    await operator.client.subscribeAsync('vigil/v1/fleet/+');
    const viewerToken = readTokenFile(g.config.viewerToken);
    if (!viewerToken) throw new Error(`test gateway: no ${g.config.viewerToken}`);
    const ctx: ApiContext & { events: EventBus; ear: EarSigner } = {
      gateway: {
        fleet: g.fleet,
        store: withEars(g.store, ears),
        sessionsOf: (id) => g.sessionsOf(id),
        sessions: () => g.sessions(),
        refreshPolicy: () => g.refreshPolicy(),
        policy: () => g.policy(),
        log: g.log,
      },
      batches,
      metrics: new GatewayMetrics(),
      events,
      ear: EarSigner.fromPem(readFileSync(g.config.earKey)),
    };
    api = await startApi(ctx, { host: '127.0.0.1', port: 0, token: gw.operatorToken, viewerToken });
    return {
      gw,
      url: `http://127.0.0.1:${api.port}/`,
      operatorToken: gw.operatorToken,
      viewerToken,
      events,
      ears,
      track(device) {
        device.on('result', (r) => ears.set(Buffer.from(r.round).toString('hex'), r.ear));
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
