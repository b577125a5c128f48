import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { Client } from 'aedes';
import pino, { type Logger } from 'pino';
import { type Clock, type Random, systemClock, systemRandom } from '../shared/clock.ts';
import { topics } from '../shared/protocol/index.ts';
import { readTokenFile } from './api/auth.ts';
import { GatewayMetrics } from './api/metrics.ts';
import { type ApiServer, startApi } from './api/server.ts';
import { roundView } from './api/views.ts';
import { type Broker, createBroker } from './broker/broker.ts';
import { type GatewayConfig, loadConfig } from './config.ts';
import { DeviceConnection } from './connections/device-connection.ts';
import { Connections } from './connections/registry.ts';
import { Replies } from './connections/replies.ts';
import { DeviceRooms } from './connections/room.ts';
import { MessageRouter } from './connections/router.ts';
import { EventBus } from './events.ts';
import { listen } from './listen.ts';
import { PolicyFile } from './policy/policy-file.ts';
import { buildRuntimePolicy, type RuntimePolicy } from './policy/runtime-policy.ts';
import { Fleet } from './posture/fleet.ts';
import { ArtifactFiles } from './releases/artifact-files.ts';
import { RolloutEngine } from './rollouts/engine.ts';
import { Attestation, type AttestationObserver } from './rounds/attestation.ts';
import { BatchTracker } from './rounds/batches.ts';
import { recoverPendingRounds } from './rounds/recovery.ts';
import { removeRunFile, writeRunFile } from './run-file.ts';
import { type HealthServer, startHealth } from './scale/health.ts';
import { openStore } from './scale/open-store.ts';
import { ScaleOut } from './scale/scale-out.ts';
import { acquireStoreLock } from './store/lock.ts';
import { startRetention } from './store/retention.ts';
import type { Store } from './store/store.ts';
import { EarSigner } from './verifier/ear.ts';
import { CryptoPool } from './verifier/pool.ts';
import { VERSION } from './version.ts';

// The composition root: the gateway's parts built in order (store, policy, posture, rounds,
// broker, operator API), each stage using only what the stages before it built, and every part
// that needs closing registered as it is built, so that shutdown (or a failed start) closes them
// in reverse.

export interface GatewayOptions {
  /** The gateway directory made by `vigil-gateway init`. */
  readonly dir: string;
  /** Overrides of the configured ports (0: any free port, for tests). */
  readonly mqttPort?: number;
  readonly apiPort?: number;
  readonly logger?: Logger;
  readonly observe?: AttestationObserver;
  readonly clock?: Clock;
  readonly random?: Random;
  /**
   * Worker threads that check quote signatures and sign EARs (verifier/pool.ts); 0 does it on the
   * main thread. Default: one per core beyond the first, at most 4.
   */
  readonly cryptoThreads?: number;
}

export interface Gateway {
  readonly config: GatewayConfig;
  readonly mqttPort: number;
  /** The operator API's port (config `api`, or GatewayOptions.apiPort). */
  readonly apiPort: number;
  readonly fleet: Fleet;
  readonly store: Store;
  readonly connections: Connections;
  readonly attestation: Attestation;
  /** Where every payload a device publishes on `out` goes (tests drive it directly). */
  readonly router: MessageRouter;
  readonly batches: BatchTracker;
  /** Rollouts: swarms moved to a release, operations released behind the barrier. */
  readonly rollouts: RolloutEngine;
  readonly events: EventBus;
  readonly metrics: GatewayMetrics;
  /** Several gateways (gateway.json `redis`): this gateway's part in the fleet. */
  readonly scale: ScaleOut | undefined;
  /** The health port (gateway.json `health`), when there is one. */
  readonly healthPort: number | undefined;
  /** The worker threads that check quote signatures and sign EARs. */
  readonly crypto: CryptoPool;
  readonly log: Logger;
  policy(): RuntimePolicy;
  /** Rebuilds the runtime policy after the releases or the allowlist changed in the store. */
  refreshPolicy(): Promise<void>;
  close(): Promise<void>;
}

type Closer = () => void | Promise<void>;

export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const config = loadConfig(opts.dir);
  const log = opts.logger ?? pino({ level: config.logLevel, base: { svc: 'vigil-gateway' } });
  const clock = opts.clock ?? systemClock;
  const random = opts.random ?? systemRandom;
  const closers: Closer[] = [];
  const closeAll = async () => {
    for (const close of closers.splice(0).reverse()) {
      try {
        await close();
      } catch (err) {
        log.error({ err }, 'closing a part of the gateway failed');
      }
    }
  };

  try {
    // 1. The store (one gateway per SQLite store: the lock; a PostgreSQL store is shared by
    // design), and the keys and secrets the gateway signs and checks with.
    if (config.scale.engine === 'sqlite') {
      const lock = acquireStoreLock(config.database, clock.now());
      closers.push(() => lock.release());
    }
    const opened = await openStore(config, log);
    const store: Store = opened.store;
    closers.push(() => store.close());
    // Several gateways: joining the others before this one reads its own pending rounds.
    const scale =
      opened.shared && config.scale.redis !== undefined
        ? await ScaleOut.start({ config, store: opened.shared, hooks: opened.hooks, log, clock, random })
        : undefined;
    if (scale) closers.push(() => scale.close());
    const ear = EarSigner.fromPem(readFileSync(config.earKey));
    // Closed after the broker (no evidence arrives then) and before the store: what it still
    // has queued is run and stored.
    const crypto = new CryptoPool(ear.key, opts.cryptoThreads ?? Math.min(4, availableParallelism() - 1));
    closers.push(() => crypto.close());
    const operatorToken = readFileSync(config.operatorToken, 'utf8').trim();

    // 2. Policy: the operator's file joined with what the store holds (releases, allowlists).
    let runtime!: RuntimePolicy;
    const refreshPolicy = async () => {
      const [releases, admitted, mcus] = await Promise.all([
        store.releases(),
        store.admitted(),
        store.mcuAdmissions(),
      ]);
      runtime = buildRuntimePolicy(policyFile.current(), policyFile.ekCas(), releases, admitted, mcus);
    };
    const policyFile = new PolicyFile(config.policy, {
      onChange: () =>
        refreshPolicy().then(
          () => log.info({ policy: runtime.id }, 'policy reloaded'),
          (err: Error) =>
            log.error({ err: err.message }, 'policy reload failed; the previous policy stays in force'),
        ),
      onInvalid: (err) =>
        log.error({ err: err.message }, 'policy file refused; the previous policy stays in force'),
    });
    closers.push(() => policyFile.close());
    await refreshPolicy();

    // 3. Posture: the fleet's records and the events live views follow.
    const events = new EventBus((err) => log.error({ err }, 'an event listener failed'));
    const fleet = new Fleet(
      store,
      {
        postureChanged: (notice) => events.publish({ kind: 'posture', notice }),
        ...(scale && { mayLapse: scale.mayLapse }),
      },
      () => runtime.graceMs,
      clock,
      log,
    );
    fleet.load(await store.devices());
    closers.push(() => fleet.close());

    // 4. Rounds: attestation, on-demand batches, what a previous run left pending, retention.
    const connections = new Connections();
    const replies = new Replies(log, clock);
    const metrics = new GatewayMetrics();
    const batches = new BatchTracker({
      store,
      askable: (id) => connections.askable(id),
      startRound: (conn, reason, batchId) => attestation.start(conn, reason, batchId),
      completed: (id, ms) => {
        metrics.batchCompleted(ms);
        events.publish({ kind: 'batch', batch: id, done: true, pending: 0, settled: -1 });
      },
      ...(scale && { requestElsewhere: scale.requestElsewhere }),
      clock,
      random,
      log,
    });
    closers.push(() => batches.close());
    const observers: AttestationObserver[] = [
      metrics,
      batches,
      {
        roundIssued: (r) => events.publish({ kind: 'round', device: r.deviceId, round: roundView(r) }),
        roundSettled: (r) => events.publish({ kind: 'round', device: r.deviceId, round: roundView(r) }),
      },
      ...(opts.observe ? [opts.observe] : []),
      ...(scale ? [scale.observer] : []),
    ];
    const observe: AttestationObserver = {
      roundIssued: (r) => {
        for (const o of observers) o.roundIssued?.(r);
      },
      roundSettled: (r, ms) => {
        for (const o of observers) o.roundSettled?.(r, ms);
      },
    };
    const attestation = new Attestation({
      fleet,
      store,
      connections,
      replies,
      policy: () => runtime,
      ear,
      crypto,
      clock,
      random,
      log,
      version: VERSION,
      observe,
    });
    const router = new MessageRouter(
      (conn, code, detail, round) => replies.refuse(conn, code, detail, round),
      () => runtime.maxPayload,
      log,
    );
    attestation.register(router);
    closers.push(
      recoverPendingRounds(await store.pendingRounds(), fleet, store, clock, observe.roundSettled),
    );
    const retention = startRetention(store, () => policyFile.current().retention.roundsDays, log);
    closers.push(() => retention.close());
    const rollouts = await RolloutEngine.open({
      artifacts: new ArtifactFiles(config.dir, opened.shared),
      store,
      fleet,
      connections,
      replies,
      startRound: (conn) => attestation.start(conn, 'swarm'),
      ear,
      artifactBytesPerSecond: () => runtime.artifactBytesPerSecond,
      publish: (notice) => events.publish({ kind: 'rollout', notice }),
      clock,
      random,
      log,
      // Several gateways: one owns each rollout, the others act for the members they hold.
      ...(scale &&
        opened.shared && {
          scale: { store: opened.shared, peers: scale.rollouts, admitWarning: () => runtime.admitWarning },
        }),
    });
    rollouts.register(router);
    observers.push({ roundSettled: (r) => rollouts.roundSettled(r) });
    closers.push(() => rollouts.close());

    // 5. The broker: MQTT over TLS 1.3, every device connection a DeviceConnection.
    const byClient = new Map<Client, DeviceConnection>();
    const rooms = new DeviceRooms(connections, replies, log);
    let closing = false;
    const broker: Broker = await createBroker(
      {
        key: readFileSync(config.tls.key),
        cert: readFileSync(config.tls.cert),
        ...(config.tls.clientCa && { clientCa: readFileSync(config.tls.clientCa) }),
        requireClientCert: config.tls.requireClientCert,
        operatorToken,
        limits: () => runtime,
        clock,
      },
      {
        deviceConnected(client, link, deviceId) {
          const conn = new DeviceConnection(link, deviceId, clock, attestation.onDeadline);
          byClient.set(client, conn);
          connections.add(conn);
        },
        closed(client) {
          const conn = byClient.get(client);
          if (!conn) return;
          byClient.delete(client);
          connections.remove(conn);
          // Shutting down: pending rounds stay pending in the store, so the next start re-arms
          // their deadlines instead of forgetting them.
          if (closing) attestation.shutdown(conn);
          else {
            attestation.closed(conn);
            rollouts.closed(conn);
          }
          scale?.connectionEnded(conn.deviceId);
        },
        deviceMessage(client, payload) {
          const conn = byClient.get(client);
          if (conn) router.dispatch(conn, payload);
        },
        peer: (client) => byClient.get(client),
        phase: (client) => byClient.get(client)?.phase,
        makeRoom: (deviceId) =>
          rooms.makeRoom(deviceId, runtime.connections.perDevice, () =>
            metrics.refused('device-connections'),
          ),
        helloMissing(client, ms) {
          const conn = byClient.get(client);
          if (conn)
            replies.refuseConnection(
              conn,
              'identity-mismatch',
              `no hello within ${ms} ms of connecting (connections.helloTimeoutMs): send hello right after CONNECT`,
            );
        },
        refused(refusal, client, tell) {
          metrics.refused(refusal.reason);
          const conn = client && byClient.get(client);
          if (tell && conn && refusal.code)
            replies.send(conn, { t: 'error', code: refusal.code, detail: refusal.why.slice(0, 1024) });
        },
        ...(scale && { mayConnect: (deviceId: string) => scale.mayConnect(deviceId) }),
      },
      log,
    );
    closers.push(async () => {
      closing = true;
      for (const conn of byClient.values()) attestation.shutdown(conn);
      await broker.close();
    });
    const unsubscribe = events.subscribe((e) => {
      if (e.kind === 'posture') {
        broker.publishRetained(topics.fleet(e.notice.id), Buffer.from(JSON.stringify(e.notice)));
        rollouts.postureChanged(e.notice);
      } else if (e.kind === 'rollout')
        broker.publishRetained(topics.rollout(e.notice.id), Buffer.from(JSON.stringify(e.notice)));
    });
    closers.push(unsubscribe);
    await scale?.attach({
      fleet,
      connections,
      attestation,
      batches,
      events,
      broker,
      rollouts,
      refreshPolicy,
      policy: () => runtime,
      settled: (r) => observe.roundSettled?.(r),
    });
    // The load balancer's check: closed first at shutdown, so that it stops sending devices here.
    let health: HealthServer | undefined;
    if (config.scale.health) {
      const report = scale
        ? () => scale.report()
        : () => ({ admitting: !closing, gateway: config.scale.gatewayId, store: config.scale.engine });
      health = await startHealth(config.scale.health, report, log);
      closers.push(() => {
        scale?.drain();
        return health?.close();
      });
    }
    const mqttPort = await listen(broker.server, opts.mqttPort ?? config.mqtt.port, config.mqtt.host);
    fleet.announceAll();
    log.info(
      { port: mqttPort, policy: runtime.id, devices: fleet.size },
      'gateway listening (MQTT over TLS 1.3)',
    );

    // 6. The operator API, and the run file the CLI finds it by.
    let api: ApiServer | undefined;
    const gateway: Gateway = {
      config,
      mqttPort,
      get apiPort() {
        return api?.port ?? 0;
      },
      fleet,
      store,
      connections,
      attestation,
      router,
      batches,
      rollouts,
      events,
      metrics,
      scale,
      healthPort: health?.port,
      crypto,
      log,
      policy: () => runtime,
      refreshPolicy,
      close: closeAll,
    };
    const viewerToken = readTokenFile(config.viewerToken);
    api = await startApi(
      { gateway, ear, ...(scale && { readUnknown: scale.readUnknown }) },
      {
        host: config.api.host,
        port: opts.apiPort ?? config.api.port,
        token: operatorToken,
        ...(viewerToken && { viewerToken }),
      },
    );
    closers.push(() => api?.close());
    writeRunFile(config.dir, {
      pid: process.pid,
      mqttPort,
      apiHost: config.api.host,
      apiPort: api.port,
      startedAt: clock.now(),
    });
    closers.push(() => removeRunFile(config.dir, process.pid));
    return gateway;
  } catch (e) {
    await closeAll();
    throw e;
  }
}
