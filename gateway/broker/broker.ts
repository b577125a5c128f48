import { constants, timingSafeEqual } from 'node:crypto';
import tls from 'node:tls';
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import type { Logger } from 'pino';
import { channelExporter, isDeviceId, topics } from '../../shared/protocol/index.ts';
import type { DeviceLink } from '../connections/device-connection.ts';
import { mayDeliver, mayPublish, maySubscribe, type Peer } from './access.ts';
import { guardPacketSize, MAX_PACKET_BYTES } from './packet-guard.ts';
import { publishFrame, topicField } from './publish-frame.ts';

// The MQTT broker (aedes on TLS 1.3). Every rule of PROTOCOL.md §1 goes through aedes' own hooks
// and the decisions in access.ts; this file only wires them and keeps per-connection identity.

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
  const peerOf = (client: Client): Peer | undefined =>
    operators.has(client) ? { kind: 'operator' } : handlers.peer(client);

  const aedes = await Aedes.createBroker({
    maxClientsIdLength: 64,
    authenticate(client, username, password, done) {
      if (username === OPERATOR_USERNAME) {
        if (!sameSecret(opts.operatorToken, password)) {
          return done(authError(4, 'operator token is wrong: use the token in the gateway directory'), false);
        }
        operators.add(client);
        return done(null, true);
      }
      if (username === undefined || !isDeviceId(username)) {
        return done(
          authError(4, 'username must be the device id (24 lowercase hex digits of the EK hash)'),
          false,
        );
      }
      const [base, suffix, ...more] = client.id.split('.');
      if (base !== username || more.length > 0 || (suffix !== undefined && !CLIENT_SUFFIX.test(suffix))) {
        return done(authError(2, `clientId must be "${username}" or "${username}.<suffix>"`), false);
      }
      // aedes would otherwise take over the older connection: refused, so that nobody can evict
      // an attested connection by reusing its clientId.
      const taken = () => (aedes as unknown as { clients: Record<string, Client> }).clients[client.id];
      if (taken()) {
        return done(authError(2, `clientId ${client.id} is connected already; use a fresh suffix`), false);
      }
      const admit = () => {
        if (client.closed) return done(authError(3, 'the connection closed during CONNECT'), false);
        if (taken())
          return done(authError(2, `clientId ${client.id} is connected already; use a fresh suffix`), false);
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
      const decision = mayPublish(peer, packet.topic, packet.retain, Date.now());
      if (decision.ok && peer.kind === 'device' && packet.topic.endsWith('/out')) {
        try {
          handlers.deviceMessage(client, packet.payload as Buffer);
        } catch (e) {
          log.error({ err: e, client: client.id }, 'handling a device message failed');
        }
      } else if (decision.ok) {
        return done(null);
      } else {
        log.warn(
          { client: client.id, topic: packet.topic.slice(0, 200), why: decision.why },
          'publish refused',
        );
      }
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
      if (decision.ok) return done(null, sub);
      log.warn(
        { client: client.id, filter: sub.topic.slice(0, 200), why: decision.why },
        'subscribe refused',
      );
      return done(null, null);
    },
    authorizeForward(client, packet) {
      const peer = peerOf(client);
      // Nothing reaches aedes' fan-out as addressed to one connection: sendDirect writes to the
      // connection itself, so an `in` topic here is always refused.
      return peer && mayDeliver(peer, packet.topic, false, Date.now()) ? packet : null;
    },
  });

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
      guardPacketSize(socket, MAX_PACKET_BYTES, (announced) =>
        log.warn({ client: client.id, announced }, 'connection cut: an MQTT packet over the size limit'),
      );
      socket.once('close', () => handlers.closed(client));
    },
  );
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
