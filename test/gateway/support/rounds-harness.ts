import { createHash, generateKeyPairSync } from 'node:crypto';
import pino from 'pino';
import { DeviceConnection, type DeviceLink } from '../../../gateway/connections/device-connection.ts';
import { Connections } from '../../../gateway/connections/registry.ts';
import { Replies } from '../../../gateway/connections/replies.ts';
import { MessageRouter } from '../../../gateway/connections/router.ts';
import type { RoundRecord } from '../../../gateway/model.ts';
import { parsePolicy } from '../../../gateway/policy/policy.ts';
import { buildRuntimePolicy, type RuntimePolicy } from '../../../gateway/policy/runtime-policy.ts';
import type { PostureNotice } from '../../../gateway/posture/fleet.ts';
import { Fleet } from '../../../gateway/posture/fleet.ts';
import { Attestation } from '../../../gateway/rounds/attestation.ts';
import { BatchTracker } from '../../../gateway/rounds/batches.ts';
import { SqliteStore } from '../../../gateway/store/sqlite.ts';
import { EarSigner } from '../../../gateway/verifier/ear.ts';
import {
  type Challenge,
  decodeGatewayMessage,
  encodeMessage,
  type GatewayMessage,
} from '../../../shared/protocol/index.ts';
import { SIM_SOFTWARE, type SimAttester, softwareReference } from '../../equipment/sim/attester.ts';
import { countingRandom, FakeClock } from '../../support/fake-clock.ts';

// The gateway's rounds without sockets: the real Attestation, router, fleet, batches and an
// in-memory SQLite store, driven by a fake clock; devices are sim attesters behind links that
// record what the gateway sends. The exporter of a link stands in for a TLS connection's: both
// ends compute it from the link and the nonce, and it differs from link to link.

export const TIMING = { periodicMs: 60_000, deadlineMs: 2_000, graceMs: 0, expiryMs: 150_000, jitter: 0.1 };

export interface SimLink {
  readonly conn: DeviceConnection;
  readonly sent: GatewayMessage[];
  readonly attester: SimAttester;
  /** The last challenge sent on this link. */
  lastChallenge(): Challenge;
  /**
   * Answers a challenge (the last by default) with evidence bound to this link. Resolves once the
   * gateway's store had its turn: the result of an enrolment waits for its commit.
   */
  answer(c?: Challenge): Promise<void>;
  /** Delivers any device message, encoded, as the broker would. */
  deliver(message: Parameters<typeof encodeMessage>[0]): void;
}

export class RoundsHarness {
  readonly clock = new FakeClock();
  readonly random = countingRandom();
  readonly store = new SqliteStore(':memory:', { flushDelayMs: 60_000 });
  readonly notices: PostureNotice[] = [];
  readonly settled: RoundRecord[] = [];
  readonly connections = new Connections();
  readonly ear = new EarSigner(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
  readonly log = pino({ level: 'silent' });
  readonly fleet: Fleet;
  readonly attestation: Attestation;
  readonly router: MessageRouter;
  readonly batches: BatchTracker;
  policy: RuntimePolicy;
  #links = 0;

  constructor(timing: Partial<typeof TIMING> = {}) {
    this.policy = buildRuntimePolicy(
      parsePolicy(
        {
          admission: { mode: 'open' },
          allowSim: true,
          referenceValues: { software: [softwareReference(SIM_SOFTWARE)] },
          rounds: { ...TIMING, ...timing },
        },
        'test',
      ),
      [],
      [],
      [],
    );
    const replies = new Replies(this.log, this.clock);
    this.fleet = new Fleet(
      this.store,
      { postureChanged: (n) => this.notices.push(n) },
      () => this.policy.graceMs,
      this.clock,
      this.log,
    );
    this.batches = new BatchTracker({
      store: this.store,
      askable: (id) => this.connections.askable(id),
      startRound: (conn, reason, batchId) => this.attestation.start(conn, reason, batchId),
      clock: this.clock,
      random: this.random,
      log: this.log,
    });
    this.attestation = new Attestation({
      fleet: this.fleet,
      store: this.store,
      connections: this.connections,
      replies,
      policy: () => this.policy,
      ear: this.ear,
      clock: this.clock,
      random: this.random,
      log: this.log,
      version: 'test',
      observe: {
        roundSettled: (r) => {
          this.settled.push(r);
          this.batches.roundSettled(r);
        },
      },
    });
    this.router = new MessageRouter(
      (conn, code, detail, round) => replies.refuse(conn, code, detail, round),
      () => this.policy.maxPayload,
      this.log,
    );
    this.attestation.register(this.router);
  }

  /** A new connection of `attester`'s device (not yet past hello). */
  connect(attester: SimAttester): SimLink {
    const sent: GatewayMessage[] = [];
    const linkId = ++this.#links;
    const link: DeviceLink = {
      clientId: `link-${linkId}`,
      remoteAddress: '127.0.0.1',
      exporter: (nonce) => exporterOf(linkId, nonce),
      send: (payload) => sent.push(decodeGatewayMessage(payload)),
      disconnect: () => this.close(conn),
    };
    const id = attester.hello().ek && deviceIdOf(attester);
    const conn = new DeviceConnection(link, id, this.clock, this.attestation.onDeadline);
    this.connections.add(conn);
    const self: SimLink = {
      conn,
      sent,
      attester,
      lastChallenge: () => {
        const c = sent.findLast((m) => m.t === 'challenge');
        if (c?.t !== 'challenge') throw new Error('no challenge was sent on this link');
        return c;
      },
      answer: (c = self.lastChallenge()) => {
        self.deliver(attester.evidence(c, exporterOf(linkId, c.nonce)));
        return new Promise((resolve) => setImmediate(resolve));
      },
      deliver: (m) => this.router.dispatch(conn, encodeMessage(m)),
    };
    return self;
  }

  close(conn: DeviceConnection): void {
    if (conn.closed) return;
    this.connections.remove(conn);
    this.attestation.closed(conn);
  }

  dispose(): void {
    for (const c of [...this.connections.all()]) this.close(c);
    this.fleet.close();
    this.batches.close();
    this.store.closeNow();
  }
}

function exporterOf(linkId: number, nonce: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(`link ${linkId}`).update(nonce).digest());
}

function deviceIdOf(a: SimAttester): string {
  return createHash('sha256').update(a.hello().ek).digest('hex').slice(0, 24);
}

export const last = <T extends GatewayMessage['t']>(l: SimLink, t: T): Extract<GatewayMessage, { t: T }> => {
  const m = l.sent.findLast((x) => x.t === t);
  if (!m) throw new Error(`no ${t} was sent on ${l.conn.clientId}`);
  return m as Extract<GatewayMessage, { t: T }>;
};
