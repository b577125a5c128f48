import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import type { TLSSocket } from 'node:tls';
import { type Logger, pino } from 'pino';
import { BootLog } from '../firmware-shims/logs/boot-log.ts';
import { ImaLog } from '../firmware-shims/logs/ima.ts';
import { McuCollector } from '../firmware-shims/serial/collector.ts';
import { provisionAttestationKeys } from '../firmware-shims/tpm/provision.ts';
import { encodeMessage } from '../shared/protocol/envelope.ts';
import { deviceIdentity } from '../shared/protocol/identity.ts';
import type { Hello, Report } from '../shared/protocol/messages.ts';
import type { BackoffPolicy } from './backoff.ts';
import { ChallengeHandler } from './challenge-handler.ts';
import { type AgentConfig, ConfigError, formatHandle, loadConfig } from './config.ts';
import { GatewayConnection, type Session } from './connection.ts';
import { Inbox, type InboxEmit, type InboxEvents } from './inbox.ts';
import {
  AGENT_NAME,
  agentVersion,
  configuredSource,
  type MeasuredSoftware,
  measureSoftware,
  type SoftwareSource,
} from './software.ts';
import { SoftwareLog } from './software-log.ts';
import { type AgentState, type ConnectionState, readState, STATE_VERSION, StateStore } from './state.ts';
import { TpmAccess } from './tpm-access.ts';
import { loadUpdateConfig } from './update/config.ts';
import { type RunningTree, UpdateExecutor } from './update/executor.ts';
import { UpdateLink } from './update/link.ts';

// The agent, composed: keys from the TPM, the software measured into swPcr, the one challenge
// handler, and a connection that says hello after every CONNECT. `vigil-agent run` is this plus
// signal handling; end-to-end tests start it in-process the same way.

export interface AgentOptions {
  /** The agent's directory: agent.json, state.json, sw-log.json. */
  readonly dir: string;
  /** Instead of DIR/agent.json (tests). */
  readonly config?: AgentConfig;
  /** Default: pino JSON lines on stdout at `info`. */
  readonly logger?: Logger;
  /** What to measure as the running software; default the agent's own code (software.ts). */
  readonly software?: SoftwareSource;
  readonly reconnect?: BackoffPolicy;
  /** A connection that lasted this long resets the reconnect backoff (ms, default 30 s). */
  readonly stableMs?: number;
}

export interface AgentEvents extends InboxEvents {
  connected: [session: Session];
  state: [state: ConnectionState];
  /** A report on a rollout command went out on an attested connection. */
  report: [report: Report];
}

export interface Agent {
  readonly deviceId: string;
  readonly ekHash: string;
  readonly config: AgentConfig;
  readonly software: MeasuredSoftware;
  /** The update executor, when DIR/update.json names software this device updates. */
  readonly update: UpdateExecutor | undefined;
  /** The updated software's tree that runs, once recovery finished. */
  readonly running: RunningTree | undefined;
  /** The state as last written to DIR/state.json. */
  readonly state: AgentState;
  /** The TLS socket of the current connection, if connected. */
  socket(): TLSSocket | undefined;
  on<K extends keyof AgentEvents>(event: K, listener: (...args: AgentEvents[K]) => void): Agent;
  once<K extends keyof AgentEvents>(event: K, listener: (...args: AgentEvents[K]) => void): Agent;
  off<K extends keyof AgentEvents>(event: K, listener: (...args: AgentEvents[K]) => void): Agent;
  /** Measures the software again and extends swPcr if it changed (SIGHUP does this). */
  remeasure(): Promise<boolean>;
  /** Disconnects, waits for a round in progress, closes the TPM. */
  stop(): Promise<void>;
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new ConfigError(
      `${what} ${path} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    );
  }
}

export async function startAgent(opts: AgentOptions): Promise<Agent> {
  const config = opts.config ?? loadConfig(opts.dir);
  const logger = opts.logger ?? pino({ name: 'vigil-agent' });
  const ca = readPem(config.ca, 'CA certificate');
  const clientCert = config.clientCert && {
    cert: readPem(config.clientCert.cert, 'client certificate'),
    key: readPem(config.clientCert.key, 'client key'),
  };
  const tpm = new TpmAccess(config.tpm);
  try {
    // Idempotent: reuses the persisted AK, recreates the EK only to read it, flushes it again.
    const keys = await tpm.run((t) =>
      provisionAttestationKeys(t, { ek: config.ek, akHandle: config.akHandle }),
    );
    const { deviceId, ekHash } = deviceIdentity(keys.ek.publicArea);
    logger.info(
      {
        deviceId,
        ekHash,
        tpm: tpm.tcti,
        ak: formatHandle(config.akHandle),
        ekCertificate: keys.ek.certificate !== undefined,
      },
      'TPM ready',
    );

    // Start order: the software log reconciled with the PCR, then the update executor's recovery
    // (it finishes or undoes an interrupted switch and measures the tree that runs), then the
    // agent's own measurement. A rollout's reports wait in `link` until a connection attested.
    const { log: swLog, outcome } = await tpm.run((t) => SoftwareLog.open(opts.dir, config.swPcr, t));
    if (outcome.kind === 'mismatch') {
      logger.error(
        {
          swPcr: config.swPcr,
          pcr: outcome.pcrValue,
          storedEntries: outcome.storedEntries,
          archivedAs: outcome.archivedAs,
        },
        `PCR ${config.swPcr} does not replay from the stored software log: something else extended it, or the log was lost. ` +
          'Starting a new log; the gateway will report log-mismatch until the device reboots. ' +
          'If another component uses this PCR, choose a free one (swPcr in agent.json) and reboot.',
      );
    } else {
      logger.info(
        { swPcr: config.swPcr, outcome: outcome.kind, entries: outcome.entries },
        'software log opened',
      );
    }
    const events = new EventEmitter<AgentEvents>();
    // A listener that throws must not take the agent down with it.
    const emit = <K extends keyof AgentEvents>(event: K, ...args: AgentEvents[K]) => {
      try {
        (events.emit as (e: K, ...a: AgentEvents[K]) => boolean)(event, ...args);
      } catch (e) {
        logger.error({ event, err: (e as Error).message }, 'an agent event listener threw');
      }
    };
    const link = new UpdateLink({
      logger,
      software: () => ({ name: software.name, version: software.version }),
      sent: (r) => emit('report', r),
    });
    const updateConfig = loadUpdateConfig(opts.dir);
    let update: { executor: UpdateExecutor; running: RunningTree } | undefined;
    if (updateConfig) {
      update = await UpdateExecutor.open({
        dir: opts.dir,
        config: updateConfig,
        keys: config.releaseKeys ?? [],
        record: async (m) => {
          await tpm.run((t) => swLog.record(t, m));
        },
        report: (r) => link.report(r),
      });
      link.use(update.executor);
      const { slot, content } = update.running;
      logger.info(
        { software: content.name, version: content.version, digest: content.digest, slot },
        'update recovery done: this tree runs',
      );
    }

    // What `vigil-agent manifest` prints is what runs: the configured tree, unless a caller
    // (tests, the bench) names another. When the agent is the software it updates, the tree in
    // its slot is what runs, measured once by the executor under the release's name.
    const source: SoftwareSource =
      update && updateConfig?.software.agent
        ? {
            name: update.running.content.name,
            version: update.running.content.version,
            root: update.running.path,
          }
        : (opts.software ?? configuredSource(config.softwareRoot));
    let software = measureSoftware(source);
    if (await tpm.run((t) => swLog.record(t, software))) {
      logger.info(
        {
          software: software.name,
          version: software.version,
          digest: Buffer.from(software.digest).toString('hex'),
        },
        `software measured into PCR ${config.swPcr}`,
      );
    }

    const previous = safeReadState(opts.dir, deviceId);
    const state = new StateStore(
      opts.dir,
      {
        version: STATE_VERSION,
        deviceId,
        ekHash,
        gateway: config.gateway.url,
        tpm: config.tpm,
        pid: process.pid,
        connection: { status: 'connecting', since: Date.now(), attempt: 0 },
        ...(previous?.lastResult && { lastResult: previous.lastResult }),
        ...(previous?.lastRound && { lastRound: previous.lastRound }),
        ...(previous?.lastError && { lastError: previous.lastError }),
      },
      (e) =>
        logger.error(
          { err: e.message, dir: opts.dir },
          'cannot write state.json; status will be out of date',
        ),
    );

    const hello: Hello = {
      t: 'hello',
      ek: keys.ek.publicArea,
      ...(keys.ek.certificate && { ekCert: keys.ek.certificate }),
      ak: keys.ak.publicArea,
      attester: 'tpm2',
      agent: `${AGENT_NAME}/${agentVersion()}`.slice(0, 64),
      swPcr: config.swPcr,
    };
    const mcus = config.mcus?.length ? new McuCollector(config.mcus) : undefined;
    if (mcus) {
      logger.info({ mcus: config.mcus!.map((p) => `${p.slot}=${p.path}`) }, 'MCU sub-attesters configured');
    }
    const handler = new ChallengeHandler({
      hello,
      tpm,
      akHandle: config.akHandle,
      ek: config.ek,
      swLog,
      software: () => software,
      ima: new ImaLog(config.logs.ima),
      boot: new BootLog(config.logs.boot),
      ...(mcus && { mcus }),
      logger,
    });
    // AgentEvents extends InboxEvents, so every inbox event is an agent event of the same shape.
    const inbox = new Inbox(handler, state, logger, emit as unknown as InboxEmit, link);
    const helloBytes = encodeMessage(handler.hello());
    const connection = new GatewayConnection({
      gateway: config.gateway,
      ca,
      ...(clientCert && { clientCert }),
      deviceId,
      hello: () => helloBytes,
      onMessage: (payload, session) => inbox.receive(payload, session),
      onState: (connectionState) => {
        state.update({ connection: connectionState });
        emit('state', connectionState);
      },
      onSession: (session) => emit('connected', session),
      logger,
      ...(opts.reconnect && { backoff: opts.reconnect }),
      ...(opts.stableMs !== undefined && { stableMs: opts.stableMs }),
    });
    connection.start();

    let stopping: Promise<void> | undefined;
    const agent: Agent = {
      deviceId,
      ekHash,
      config,
      get software() {
        return software;
      },
      update: update?.executor,
      running: update?.running,
      get state() {
        return state.current;
      },
      socket: () => connection.session?.socket,
      on(event, listener) {
        events.on(event, listener as never);
        return agent;
      },
      once(event, listener) {
        events.once(event, listener as never);
        return agent;
      },
      off(event, listener) {
        events.off(event, listener as never);
        return agent;
      },
      async remeasure() {
        const now = measureSoftware(source);
        const changed = await tpm.run((t) => swLog.record(t, now));
        software = now;
        if (changed)
          logger.info({ software: now.name, version: now.version }, 'software changed; measured into swPcr');
        return changed;
      },
      stop() {
        stopping ??= (async () => {
          await connection.stop();
          await inbox.idle();
          await mcus?.close();
          await update?.executor.close();
          await tpm.close();
          logger.info('agent stopped');
        })();
        return stopping;
      },
    };
    return agent;
  } catch (e) {
    await tpm.close();
    throw e;
  }
}

/** The previous run's report, kept only if it was about this very device. */
function safeReadState(dir: string, deviceId: string): AgentState | undefined {
  try {
    const s = readState(dir);
    return s?.deviceId === deviceId ? s : undefined;
  } catch {
    return undefined;
  }
}
