import { constants, timingSafeEqual } from 'node:crypto';
import tls from 'node:tls';
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import type { Logger } from 'pino';
import { type Clock, systemClock } from '../../shared/clock.ts';
import { appTopicOwner, channelExporter, isDeviceId, topics } from '../../shared/protocol/index.ts';
import type { DeviceLink, Phase } from '../connections/device-connection.ts';
import { LogBudget } from '../connections/log-budget.ts';
import { mayDeliver, mayPublish, maySubscribe, type Peer } from './access.ts';
import { ConnectionGuard } from './connection-guard.ts';
import type { BrokerLimits, BrokerRefusal } from './limits.ts';
import { guardPacketSize, packetLimit } from './packet-guard.ts';
import { publishFrame, topicField } from './publish-frame.ts';
import { RetainedLedger, SubscriptionLedger } from './quotas.ts';
import { SessionStore } from './session-store.ts';

// The MQTT broker (aedes on TLS 1.3). Every rule of PROTOCOL.md §1 goes through aedes' own hooks
// and the decisions in access.ts; every bound of the policy's `connections` and `quotas` through
// the same hooks and the pieces beside this file (connection-guard, quotas, session-store). This
// file wires them, keeps per-connection identity, and reports each refusal once: counted, logged
// within the client's budget, and told to the device when it is the device's own doing.

/** Where refused and consumed publishes are rerouted: no client can subscribe under `$`. */
const VOID_TOPIC = '$vigil/void';
/** `{id}` or `{id}.{suffix}`: a fresh suffix per connection lets a device reconnect without takeover. */
const CLIENT_SUFFIX = /^[A-Za-z0-9_-]{1,32}$/;
export const OPERATOR_USERNAME = 'operator';

export interface BrokerHandlers {
  /** A device passed MQTT authentication; its attestation starts when its hello arrives. */
  deviceConnected(client: Client, link: DeviceLink, deviceId: string): void;
  /** The connection is gone (any reason). */
  closed(client: Client): void;
  /** A payload the device published on its own `out`; consumed here, forwarded to nobody. */
  deviceMessage(client: Client, payload: Buffer): void;
  /** The peer of a client, as access.ts judges it (read at every decision: trust changes). */
  peer(client: Client): Peer | undefined;
  /** Where a device's connection is in its life (hello deadline, per-address limit). */
  phase(client: Client): Phase | undefined;
  /**
   * Called before a device's connection is accepted: makes room for it under the device's
   * connection limit (closing an unattested one), or returns why there is none.
   */
  makeRoom(deviceId: string): string | undefined;
  /** A device connection said no hello within the deadline: tell it, and close it. */
  helloMissing(client: Client, timeoutMs: number): void;
  /**
   * A refusal (already logged within budget): count it; when `tell` and the refusal has a code,
   * the device hears of it on its `in` topic.
   */
  refused(refusal: BrokerRefusal, client: Client | undefined, tell: boolean): void;
  /**
   * Several gateways (gateway/scale): asked after the local checks whether the device may connect
   * here now; a refusal is sent as the CONNACK return code, its reason logged.
   */
  mayConnect?(deviceId: string): Promise<ConnectRefusal | undefined>;
}

export interface ConnectRefusal {
  /** 2: identifier rejected (the id is attested elsewhere); 3: server unavailable (retry later). */
  readonly returnCode: 2 | 3;
  readonly reason: string;
}

export interface BrokerOptions {
  readonly key: Buffer;
  readonly cert: Buffer;
  /** CA for client certificates, when they are required. */
  readonly clientCa?: Buffer;
  readonly requireClientCert: boolean;
  readonly operatorToken: string;
  /** The policy's bounds, read at every decision (a reload applies at once). */
  readonly limits: () => BrokerLimits;
  readonly clock?: Clock;
}

export interface Broker {
  readonly aedes: Aedes;
  readonly server: tls.Server;
  /** Sends to exactly this connection, bypassing topic fan-out (the only way `in` travels). */
  sendDirect(client: Client, topic: string, payload: Buffer): void;
  /** Publishes a retained message to subscribers (posture events). */
  publishRetained(topic: string, payload: Buffer): void;
  close(): Promise<void>;
}

function authError(returnCode: 2 | 3 | 4 | 5, message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

function sameSecret(a: string, b: Buffer | undefined): boolean {
  if (b === undefined) return false;
  const want = Buffer.from(a);
  return want.length === b.length && timingSafeEqual(want, b);
}

export async function createBroker(
  opts: BrokerOptions,
  handlers: BrokerHandlers,
  log: Logger,
): Promise<Broker> {
  const operators = new WeakSet<Client>();
  /** The device a client authenticated as. */
  const deviceOf = new WeakMap<Client, string>();
  /** What CONNECT asked for, read in preConnect (authenticate is not given the packet). */
  const asked = new WeakMap<Client, { keepalive: number; willBytes: number }>();
  const peerOf = (client: Client): Peer | undefined =>
    operators.has(client) ? { kind: 'operator' } : handlers.peer(client);
  const limits = opts.limits;

  const budget = new LogBudget<object>(opts.clock ?? systemClock, (key, suppressed) =>
    log.warn({ client: (key as Partial<Client>).id, suppressed }, 'refusals not logged in the last window'),
  );
  /** Every refusal goes through here: logged within the client's (or address's) budget, counted. */
  const report = (refusal: BrokerRefusal, client: Client | undefined, key: object = client ?? {}) => {
    const loud = budget.take(key);
    if (loud)
      log.warn(
        {
          client: client?.id,
          address: (client?.conn as tls.TLSSocket | undefined)?.remoteAddress,
          reason: refusal.reason,
          why: refusal.why.slice(0, 300),
        },
        'refused',
      );
    handlers.refused(refusal, client, loud);
  };

  const retained = new RetainedLedger();
  const sessions = new SessionStore({
    quotas: () => limits().quotas,
    dropped: (session, refusal) => report(refusal, undefined, session),
  });
  const subscriptions = new SubscriptionLedger<Client>((id) => sessions.offlineFilters(id));
  const guard = new ConnectionGuard({
    limits: () => limits().connections,
    standing: (client) => (operators.has(client) ? 'operator' : handlers.phase(client)),
    helloMissing: (client, ms) => handlers.helloMissing(client, ms),
    refused: (refusal, _address, key, client) => report(refusal, client, key),
  });

  const aedes = await Aedes.createBroker({
    maxClientsIdLength: 64,
    persistence: sessions.persistence,
    preConnect(client, packet, done) {
      const will = packet.will?.payload;
      asked.set(client, {
        keepalive: packet.keepalive ?? 0,
        willBytes: typeof will === 'string' ? Buffer.byteLength(will) : (will?.length ?? 0),
      });
      done(null, true);
    },
    authenticate(client, username, password, done) {
      const refuse = (code: 2 | 3 | 4 | 5, refusal: BrokerRefusal | string) => {
        if (typeof refusal !== 'string') report(refusal, client);
        return done(authError(code, typeof refusal === 'string' ? refusal : refusal.why), false);
      };
      const { keepalive, willBytes } = asked.get(client) ?? { keepalive: 0, willBytes: 0 };
      const { connections, maxPayload } = limits();
      // MQTT 3.1.1 has no return code for either: 5 (not authorized) is the closest, and says
      // "not like this" rather than "try again".
      if (keepalive === 0 || keepalive > connections.keepaliveMaxS)
        return refuse(5, {
          reason: 'keepalive',
          why: `keepalive ${keepalive} s refused: use 1 to ${connections.keepaliveMaxS} s (connections.keepaliveMaxS); 0 would let a silent connection live forever`,
        });
      if (willBytes > maxPayload)
        return refuse(5, {
          reason: 'payload-too-large',
          why: `a will of ${willBytes} bytes exceeds the maximum of ${maxPayload} (maxPayload)`,
        });
      if (username === OPERATOR_USERNAME) {
        if (!sameSecret(opts.operatorToken, password))
          return refuse(4, 'operator token is wrong: use the token in the gateway directory');
        operators.add(client);
        return done(null, true);
      }
      if (username === undefined || !isDeviceId(username))
        return refuse(4, 'username must be the device id (24 lowercase hex digits of the EK hash)');
      const [base, suffix, ...more] = client.id.split('.');
      if (base !== username || more.length > 0 || (suffix !== undefined && !CLIENT_SUFFIX.test(suffix)))
        return refuse(2, `clientId must be "${username}" or "${username}.<suffix>"`);
      // aedes would otherwise take over the older connection: refused, so that nobody can evict
      // an attested connection by reusing its clientId.
      const taken = () => (aedes as unknown as { clients: Record<string, Client> }).clients[client.id];
      if (taken()) return refuse(2, `clientId ${client.id} is connected already; use a fresh suffix`);
      const admit = () => {
        if (client.closed) return refuse(3, 'the connection closed during CONNECT');
        if (taken()) return refuse(2, `clientId ${client.id} is connected already; use a fresh suffix`);
        const full = handlers.makeRoom(username);
        // 3 (server unavailable): the device may try again once its older connections are gone.
        if (full !== undefined) return refuse(3, { reason: 'device-connections', why: full });
        deviceOf.set(client, username);
        sessions.opened(client.id, username, client.clean);
        handlers.deviceConnected(
          client,
          deviceLink(client, client.conn as tls.TLSSocket, username),
          username,
        );
        return done(null, true);
      };
      if (!handlers.mayConnect) return admit();
      handlers.mayConnect(username).then(
        (refusal) => {
          if (!refusal) return admit();
          log.info(
            { client: client.id, returnCode: refusal.returnCode, why: refusal.reason },
            'CONNECT refused',
          );
          done(authError(refusal.returnCode, refusal.reason), false);
        },
        (err: Error) => done(authError(3, `cannot admit a connection now (${err.message}); retry`), false),
      );
    },
    authorizePublish(client, packet, done) {
      const peer = client && peerOf(client);
      if (!client || !peer) return done(new Error('not authenticated'));
      const { maxPayload, quotas } = limits();
      const bytes = (packet.payload as Buffer).length;
      const decision = mayPublish(peer, packet.topic, packet.retain, Date.now());
      let refusal: BrokerRefusal | undefined;
      if (bytes > maxPayload)
        refusal = {
          reason: 'payload-too-large',
          why: `the payload of ${bytes} bytes on ${packet.topic.slice(0, 200)} exceeds the maximum of ${maxPayload} (maxPayload)`,
          code: 'malformed',
        };
      else if (!decision.ok) refusal = { reason: 'publish-denied', why: decision.why };
      else if (peer.kind === 'device' && packet.topic.endsWith('/out')) {
        try {
          handlers.deviceMessage(client, packet.payload as Buffer);
        } catch (e) {
          log.error({ err: e, client: client.id }, 'handling a device message failed');
        }
      } else {
        const owner = packet.retain ? appTopicOwner(packet.topic) : undefined;
        // Operators are not held to a device's quotas, but what they retain under a device's
        // topics is counted with the rest of it.
        refusal = owner
          ? retained.retain(owner, packet.topic, bytes, quotas, peer.kind === 'device')
          : undefined;
        if (!refusal) return done(null);
      }
      if (refusal) report(refusal, client);
      // MQTT 3.1.1 has no negative PUBACK: acknowledge as usual, deliver to nobody.
      packet.topic = VOID_TOPIC;
      packet.retain = false;
      return done(null);
    },
    authorizeSubscribe(client, sub, done) {
      const peer = peerOf(client);
      const decision = peer
        ? maySubscribe(peer, sub.topic, Date.now())
        : { ok: false as const, why: 'not authenticated' };
      const refusal: BrokerRefusal | undefined = !decision.ok
        ? { reason: 'subscribe-denied', why: `${sub.topic.slice(0, 200)}: ${decision.why}` }
        : peer?.kind === 'device' && sub.topic !== topics.in(peer.deviceId)
          ? subscriptions.subscribe(peer.deviceId, client, sub.topic, limits().quotas)
          : undefined;
      if (!refusal) return done(null, sub);
      // Refused filters must not reach the session store with the granted ones of the packet.
      sessions.refuse(sub);
      report(refusal, client);
      return done(null, null);
    },
    authorizeForward(client, packet) {
      const peer = peerOf(client);
      // Nothing reaches aedes' fan-out as addressed to one connection: sendDirect writes to the
      // connection itself, so an `in` topic here is always refused.
      return peer && mayDeliver(peer, packet.topic, false, Date.now()) ? packet : null;
    },
  });
  aedes.on('unsubscribe', (filters, client) => {
    const id = deviceOf.get(client);
    if (id) subscriptions.unsubscribe(id, client, filters);
  });
  const forget = (client: Client) => {
    const id = deviceOf.get(client);
    if (id === undefined) return;
    subscriptions.closed(id, client);
    if (!client.clean) sessions.closed(client.id);
  };

  // A PUBLISH framed here and written to this connection's socket: exactly one recipient, in
  // order with whatever aedes itself writes there (whole packets, one write each).
  const writeDirect = (client: Client, topic: Buffer, payload: Uint8Array) => {
    const socket = client.conn as tls.TLSSocket;
    if (socket.destroyed || !socket.writable) {
      log.debug({ client: client.id }, 'direct send failed: connection closed');
      return;
    }
    socket.write(publishFrame(topic, payload));
  };
  const sendDirect = (client: Client, topic: string, payload: Buffer) =>
    writeDirect(client, topicField(topic), payload);
  const deviceLink = (client: Client, socket: tls.TLSSocket, deviceId: string): DeviceLink => {
    const inTopic = topicField(topics.in(deviceId));
    return {
      clientId: client.id,
      remoteAddress: socket.remoteAddress,
      exporter: (nonce) => channelExporter(socket, nonce),
      send: (payload) => writeDirect(client, inTopic, payload),
      disconnect: () => client.close(),
    };
  };

  const server = tls.createServer(
    {
      key: opts.key,
      cert: opts.cert,
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      // No tickets usable and no session cache: attestation never carries over to a resumed
      // connection (Node cannot set the ticket count to 0; without a cache none can be resumed).
      secureOptions: constants.SSL_OP_NO_TICKET,
      requestCert: opts.requireClientCert,
      rejectUnauthorized: opts.requireClientCert,
      ...(opts.clientCa && { ca: opts.clientCa }),
    },
    (socket) => {
      const client = aedes.handle(socket);
      guard.secured(socket.remoteAddress, socket.remotePort, client);
      guardPacketSize(
        socket,
        () => packetLimit(limits().maxPayload),
        (announced) =>
          log.warn({ client: client.id, announced }, 'connection cut: an MQTT packet over the size limit'),
      );
      socket.once('close', () => {
        forget(client);
        handlers.closed(client);
      });
    },
  );
  // Before the TLS handshake: the per-address limit and the hello deadline start here.
  server.on('connection', (socket) => guard.accepted(socket));
  server.on('tlsClientError', (err, socket) => {
    log.debug({ err: err.message, remote: socket.remoteAddress }, 'TLS handshake refused');
  });

  return {
    aedes,
    server,
    sendDirect,
    publishRetained(topic, payload) {
      aedes.publish({ cmd: 'publish', topic, payload, qos: 0, retain: true, dup: false }, (err) => {
        if (err) log.warn({ err: err.message, topic }, 'retained publish failed');
      });
    },
    async close() {
      // Stop accepting first, then let aedes disconnect everyone, which lets the server finish.
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await stopped;
    },
  };
}
