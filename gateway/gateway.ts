import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { Client } from 'aedes';
import pino, { type Logger } from 'pino';
import {
  decodeDeviceMessage,
  encodeMessage,
  type GatewayMessage,
  ProtocolError,
  topics,
} from '../shared/protocol/index.ts';
import { GatewayMetrics } from './api/metrics.ts';
import { type ApiServer, startApi } from './api/server.ts';
import { type Broker, createBroker } from './broker/broker.ts';
import { type GatewayConfig, loadConfig } from './config.ts';
import { DeviceSession } from './connections/device-connection.ts';
import { PolicyFile } from './policy/policy-file.ts';
import { buildRuntimePolicy, type RuntimePolicy } from './policy/runtime-policy.ts';
import { Fleet, type PostureNotice } from './posture/fleet.ts';
import { Attestation, type AttestationObserver } from './rounds/attestation.ts';
import { BatchTracker } from './rounds/batches.ts';
import { recoverPendingRounds } from './rounds/recovery.ts';
import { removeRunFile, writeRunFile } from './run-file.ts';
import { startRetention } from './store/retention.ts';
import { SqliteStore } from './store/sqlite.ts';
import type { PostureStore } from './store/store.ts';
import { EarSigner } from './verifier/ear.ts';
import { VERSION } from './version.ts';

export interface GatewayOptions {
  /** The gateway directory made by `vigil-gateway init`. */
  readonly dir: string;
  /** Overrides of the configured ports (0: any free port, for tests). */
  readonly mqttPort?: number;
  readonly apiPort?: number;
  readonly logger?: Logger;
  readonly observe?: AttestationObserver;
}

export interface Gateway {
  readonly config: GatewayConfig;
  readonly mqttPort: number;
  /** The operator API's port (config `api`, or GatewayOptions.apiPort). */
  readonly apiPort: number;
  readonly fleet: Fleet;
  readonly store: PostureStore;
  readonly attestation: Attestation;
  readonly log: Logger;
  policy(): RuntimePolicy;
  /** Rebuilds the runtime policy after the releases or the allowlist changed. */
  refreshPolicy(): void;
  /** Live device connections, newest last. */
  sessionsOf(deviceId: string): readonly DeviceSession[];
  sessions(): IterableIterator<DeviceSession>;
  close(): Promise<void>;
}

export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const config = loadConfig(opts.dir);
  const log = opts.logger ?? pino({ level: config.logLevel, base: { svc: 'vigil-gateway' } });
  const store: PostureStore = new SqliteStore(config.database, {
    onWriteError: (err) => log.error({ err: err.message }, 'posture store refused a write'),
  });
  const ear = EarSigner.fromPem(readFileSync(config.earKey));
  const operatorToken = readFileSync(config.operatorToken, 'utf8').trim();

  let runtime!: RuntimePolicy;
  const policyFile = new PolicyFile(config.policy, {
    onChange: () => {
      refreshPolicy();
      log.info({ policy: runtime.id }, 'policy reloaded');
    },
    onInvalid: (err) =>
      log.error({ err: err.message }, 'policy file refused; the previous policy stays in force'),
  });
  const refreshPolicy = () => {
    runtime = buildRuntimePolicy(policyFile.current(), policyFile.ekCas(), store.releases(), (h) =>
      store.isAdmitted(h),
    );
  };
  refreshPolicy();

  const sessions = new Map<Client, DeviceSession>();
  const byDevice = new Map<string, DeviceSession[]>();
  const sessionsOf = (id: string): readonly DeviceSession[] => byDevice.get(id) ?? [];

  let broker: Broker | undefined;
  let closing = false;
  const fleet = new Fleet(
    store,
    {
      postureChanged(notice: PostureNotice) {
        broker?.publishRetained(topics.fleet(notice.id), Buffer.from(JSON.stringify(notice)));
      },
    },
    () => runtime.graceMs,
    log,
  );
  fleet.load();

  const send = (session: DeviceSession, message: GatewayMessage) => {
    if (session.closed || !broker) return;
    broker.sendDirect(session.client, topics.in(session.deviceId), Buffer.from(encodeMessage(message)));
  };

  // Operator control observes every round: metrics, and the batches waiting for them.
  const metrics = new GatewayMetrics();
  const batches = new BatchTracker({
    store,
    sessionsOf,
    startRound: (session, reason, batchId) => attestation.startRound(session, reason, batchId),
    completed: (ms) => metrics.batchCompleted(ms),
    log,
  });
  const observers: AttestationObserver[] = [metrics, batches, ...(opts.observe ? [opts.observe] : [])];
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
    policy: () => runtime,
    ear,
    send,
    sessionsOf,
    disconnect: (s) => s.client.close(),
    log,
    version: VERSION,
    observe,
  });
  const stopRecovery = recoverPendingRounds(store.pendingRounds(), fleet, store);
  const retention = startRetention(store, () => policyFile.current().retention.roundsDays, log);

  broker = await createBroker(
    {
      key: readFileSync(config.tls.key),
      cert: readFileSync(config.tls.cert),
      ...(config.tls.clientCa && { clientCa: readFileSync(config.tls.clientCa) }),
      requireClientCert: config.tls.requireClientCert,
      operatorToken,
    },
    {
      deviceConnected(client, socket, deviceId) {
        const session = new DeviceSession(client, socket, deviceId);
        sessions.set(client, session);
        byDevice.set(deviceId, [...sessionsOf(deviceId), session]);
      },
      closed(client) {
        const session = sessions.get(client);
        if (!session) return;
        if (closing) {
          // Shutting down: pending rounds stay pending in the store, so the next start re-arms
          // their deadlines instead of forgetting them.
          session.close();
          return;
        }
        sessions.delete(client);
        const rest = sessionsOf(session.deviceId).filter((s) => s !== session);
        if (rest.length > 0) byDevice.set(session.deviceId, rest);
        else byDevice.delete(session.deviceId);
        attestation.onClosed(session);
      },
      deviceMessage(client, payload) {
        const session = sessions.get(client);
        if (!session || session.closed) return;
        let message: ReturnType<typeof decodeDeviceMessage>;
        try {
          message = decodeDeviceMessage(payload, { maxPayload: runtime.maxPayload });
        } catch (e) {
          if (!(e instanceof ProtocolError)) throw e;
          return attestation.refuse(session, e.code, e.detail);
        }
        if (message.t === 'hello') attestation.onHello(session, message);
        else if (!session.hello)
          attestation.refuse(session, 'identity-mismatch', 'evidence before hello: send hello first');
        else attestation.onEvidence(session, message);
      },
      peer: (client) => sessions.get(client),
    },
    log,
  );
  const mqttPort = opts.mqttPort ?? config.mqtt.port;
  await new Promise<void>((resolve, reject) => {
    broker!.server.once('error', reject);
    broker!.server.listen(mqttPort, config.mqtt.host, () => resolve());
  });
  fleet.announceAll(Date.now());
  const port = (broker.server.address() as AddressInfo).port;
  log.info({ port, policy: runtime.id, devices: fleet.size }, 'gateway listening (MQTT over TLS 1.3)');

  let api: ApiServer | undefined;
  const gateway: Gateway = {
    config,
    mqttPort: port,
    get apiPort() {
      return api?.port ?? 0;
    },
    fleet,
    store,
    attestation,
    log,
    policy: () => runtime,
    refreshPolicy,
    sessionsOf,
    sessions: () => sessions.values(),
    async close() {
      closing = true;
      retention.close();
      removeRunFile(config.dir, process.pid);
      await api?.close();
      batches.close();
      policyFile.close();
      for (const s of sessions.values()) s.close();
      await broker!.close();
      stopRecovery();
      fleet.close();
      store.close();
    },
  };
  try {
    api = await startApi(
      { gateway, batches, metrics },
      { host: config.api.host, port: opts.apiPort ?? config.api.port, token: operatorToken },
    );
  } catch (e) {
    await gateway.close();
    throw e;
  }
  writeRunFile(config.dir, {
    pid: process.pid,
    mqttPort: port,
    apiHost: config.api.host,
    apiPort: api.port,
    startedAt: Date.now(),
  });
  return gateway;
}
