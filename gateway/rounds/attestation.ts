import type { Logger } from 'pino';
import type { Clock, Random } from '../../shared/clock.ts';
import type { Evidence, Hello, ResultCode, RoundReason, Status } from '../../shared/protocol/index.ts';
import { objectName, toHex } from '../../shared/tpm/index.ts';
import type { ActiveRound, DeviceConnection } from '../connections/device-connection.ts';
import type { Connections } from '../connections/registry.ts';
import type { Replies } from '../connections/replies.ts';
import type { MessageRouter } from '../connections/router.ts';
import type { DeviceRecord, RoundRecord } from '../model.ts';
import type { RuntimePolicy } from '../policy/runtime-policy.ts';
import type { Fleet } from '../posture/fleet.ts';
import { type Standing, trustedUntil } from '../posture/posture.ts';
import type { StoreWriter } from '../store/store.ts';
import { type Appraisal, appraise } from '../verifier/appraise.ts';
import type { EarSigner } from '../verifier/ear.ts';
import { checkHello, recordFromHello } from '../verifier/hello.ts';
import { PeriodicRounds } from './periodic.ts';
import { planRound } from './round-plan.ts';

export interface AttestationDeps {
  readonly fleet: Fleet;
  readonly store: StoreWriter;
  readonly connections: Connections;
  readonly replies: Replies;
  readonly policy: () => RuntimePolicy;
  readonly ear: EarSigner;
  readonly clock: Clock;
  readonly random: Random;
  readonly log: Logger;
  readonly version: string;
  readonly observe?: AttestationObserver;
}

/** Metrics, batches and live events listen here. */
export interface AttestationObserver {
  roundIssued?(round: RoundRecord): void;
  roundSettled?(round: RoundRecord, appraisalMs?: number): void;
}

/** The stored form of a round, from what the connection keeps in memory: no read-back. */
const roundRecord = (conn: DeviceConnection, r: ActiveRound): RoundRecord => ({
  id: r.id,
  deviceId: conn.deviceId,
  ...(r.batchId && { batchId: r.batchId }),
  reason: r.reason,
  nonce: r.nonce,
  pcrs: r.pcrs,
  logs: r.logs,
  activate: r.activation !== undefined,
  issuedAt: r.issuedAt,
  deadlineAt: r.deadlineAt,
  state: 'pending',
  codes: [],
});

/**
 * The gateway as Verifier: hello → admission → challenge, evidence → round checks → appraisal →
 * result and posture. Onboarding is the first round of a connection, with `activate` added when
 * no activated AK is known: one code path on both sides.
 */
export class Attestation {
  readonly #periodic: PeriodicRounds;

  constructor(private readonly deps: AttestationDeps) {
    this.#periodic = new PeriodicRounds(
      deps.clock,
      () => deps.policy(),
      (conn) => this.start(conn, 'periodic'),
    );
  }

  /** Takes `hello` and `evidence` from the router. */
  register(router: MessageRouter): void {
    router.on(
      'hello',
      ['awaiting-hello'],
      (conn, m) => this.onHello(conn, m),
      () => 'hello was already received on this connection; send it once, right after CONNECT',
    );
    router.on(
      'evidence',
      ['attesting', 'attested'],
      (conn, m) => this.onEvidence(conn, m),
      () => 'evidence before hello: no round was issued on this connection; send hello first',
    );
  }

  /** Called by a connection's round tracker when a round passes its deadline unanswered. */
  readonly onDeadline = (conn: DeviceConnection, round: ActiveRound): void => {
    if (conn.closed) return;
    this.expired(conn, round);
    this.deps.replies.refuse(
      conn,
      'stale',
      `round ${round.id} passed its deadline without evidence`,
      Buffer.from(round.id, 'hex'),
    );
    this.#periodic.schedule(conn);
  };

  private onHello(conn: DeviceConnection, hello: Hello): void {
    const { fleet, clock, log } = this.deps;
    const known = fleet.get(conn.deviceId);
    const outcome = checkHello(hello, conn.deviceId, this.deps.policy().admission, known !== undefined);
    if (!outcome.ok) {
      this.deps.replies.refuseConnection(conn, outcome.code, outcome.detail);
      return;
    }
    if (outcome.firstUseUnderOpen) {
      log.warn(
        { device: conn.deviceId, ekHash: outcome.context.ekHash },
        'ADMISSION IS OPEN: a device unknown to this gateway was admitted on first use',
      );
    }
    conn.accept(outcome.context);
    // A device never seen gets its first record (enrolling) so that its onboarding is visible and
    // its rounds are stored; a known device's record is not touched by an unattested hello.
    if (!known) fleet.save(recordFromHello(undefined, outcome.context, clock.now()));
    this.start(conn, 'onboard');
  }

  /**
   * Issues a round on this connection, or returns the one already in flight (a device quotes one
   * round at a time; a batch simply waits for that answer).
   */
  start(conn: DeviceConnection, reason: RoundReason, batchId?: string): ActiveRound | undefined {
    const hello = conn.hello;
    if (!hello || conn.closed) return undefined;
    const inFlight = conn.rounds.values().next();
    if (!inFlight.done) return inFlight.value;
    const policy = this.deps.policy();
    const { round, challenge } = planRound({
      reason,
      ...(batchId && { batchId }),
      hello,
      device: this.deps.fleet.get(conn.deviceId)!,
      pcrs: policy.pcrs,
      deadlineMs: policy.deadlineMs,
      now: this.deps.clock.now(),
      random: this.deps.random,
      exporter: (nonce) => conn.link.exporter(nonce),
    });
    conn.rounds.open(round);
    const record = roundRecord(conn, round);
    this.deps.store.saveRound(record);
    this.deps.observe?.roundIssued?.(record);
    this.deps.replies.send(conn, challenge);
    return round;
  }

  private onEvidence(conn: DeviceConnection, evidence: Evidence): void {
    const id = toHex(evidence.round);
    const found = conn.rounds.lookup(id);
    if (found.kind !== 'open') {
      const [code, detail] =
        found.kind === 'unknown'
          ? (['round-unknown', `round ${id} was not issued on this connection`] as const)
          : found.how === 'answered'
            ? (['round-replayed', `round ${id} was already answered`] as const)
            : (['round-expired', `round ${id} passed its deadline`] as const);
      this.deps.replies.refuse(conn, code, detail, evidence.round);
      return;
    }
    const round = found.item;
    if (this.deps.clock.now() > round.deadlineAt) {
      // Arrived after the deadline but before its timer ran: the same as the timer.
      conn.rounds.settle(id, 'expired');
      this.expired(conn, round);
      this.deps.replies.refuse(conn, 'round-expired', `round ${id} passed its deadline`, evidence.round);
      this.#periodic.schedule(conn);
      return;
    }
    const ctx = conn.hello!;
    const device = this.deps.fleet.get(conn.deviceId)!;
    const clockAt = device.clock?.at;
    const started = performance.now();
    const appraisal = appraise(
      evidence,
      {
        nonce: round.nonce,
        exporter: round.exporter,
        pcrs: round.pcrs,
        ...(round.activation && { activation: round.activation }),
      },
      {
        ek: ctx.ek,
        ekName: ctx.ekName,
        ak: { public: ctx.ak, publicArea: round.akPublicArea },
        swPcr: ctx.hello.swPcr,
        ...(device.clock && { clock: device.clock }),
        ...(clockAt !== undefined && { clockElapsedMs: this.deps.clock.now() - clockAt }),
        ...(device.swLog && { swLog: device.swLog }),
        genuineHardware: ctx.genuineHardware,
      },
      this.deps.policy().reference,
    );
    // A body that is not a claims map fails PROTOCOL.md §2: `error`, nothing appraised, no
    // posture change; the round stays open until its deadline like after any malformed message.
    if (!appraisal.ok && appraisal.code === 'malformed') {
      this.deps.replies.refuse(conn, 'malformed', appraisal.detail, evidence.round);
      return;
    }
    conn.rounds.settle(id, 'answered');
    this.conclude(conn, round, evidence, appraisal, device, performance.now() - started);
  }

  private conclude(
    conn: DeviceConnection,
    round: ActiveRound,
    evidence: Evidence,
    a: Appraisal,
    device: DeviceRecord,
    appraisalMs: number,
  ): void {
    const { fleet, log, clock } = this.deps;
    const policy = this.deps.policy();
    const now = clock.now();
    const codes: ResultCode[] = a.ok ? [] : [a.code];
    const expires = a.ok ? now + policy.expiryMs : now;
    conn.trustedUntil = trustedUntil({ status: a.status, expires }, policy.admitWarning);
    if (a.ok) {
      conn.attest();
      // The attested connection's hello becomes the device's record, with the AK it just
      // activated (when it did) and what the quote established.
      const updated: DeviceRecord = {
        ...recordFromHello(device, conn.hello!, now),
        ...(round.activation && {
          ak: { publicArea: round.akPublicArea, name: objectName(round.akPublicArea), enrolledAt: now },
        }),
        clock: { ...a.clock, at: round.issuedAt },
        swLog: a.swLog,
      };
      if (round.activation) log.info({ device: device.id }, 'AK activated and enrolled');
      if (a.rebooted) log.info({ device: device.id, resetCount: a.clock.resetCount }, 'device rebooted');
      fleet.apply(updated, { kind: 'appraised', status: a.status, expires }, round.id);
      this.retireOlderConnections(conn);
    } else {
      fleet.apply(device, { kind: 'refused', code: a.code, standing: this.standing(conn) }, round.id);
    }
    const detail = a.ok
      ? a.rebooted
        ? 'device rebooted (resetCount increased); software log replayed from 0'
        : undefined
      : a.detail;
    const ear = this.deps.ear.sign({
      deviceId: conn.deviceId,
      status: a.status,
      trust: a.trust,
      codes,
      nonce: round.nonce,
      issuedAt: now,
      expires,
      policyId: policy.id,
      verifierBuild: this.deps.version,
    });
    const record: RoundRecord = {
      ...roundRecord(conn, round),
      state: 'appraised',
      status: a.status,
      codes,
      ...(detail && { detail }),
      evidence: { exporter: round.exporter, body: evidence.body, attest: evidence.attest, sig: evidence.sig },
      appraisedAt: now,
      ear,
    };
    this.deps.store.saveRound(record);
    this.deps.observe?.roundSettled?.(record, appraisalMs);
    this.sendResult(conn, round, a.status, codes, expires, ear);
    this.#periodic.schedule(conn);
  }

  private sendResult(
    conn: DeviceConnection,
    round: ActiveRound,
    status: Status,
    reasons: ResultCode[],
    expires: number,
    ear: Uint8Array,
  ): void {
    this.deps.replies.send(conn, {
      t: 'result',
      round: Buffer.from(round.id, 'hex'),
      status,
      reasons,
      expires,
      ear,
    });
  }

  /** A round ended without evidence (its deadline passed). */
  private expired(conn: DeviceConnection, round: ActiveRound): void {
    conn.trustedUntil = 0;
    const record: RoundRecord = {
      ...roundRecord(conn, round),
      state: 'stale',
      codes: ['stale'],
      detail: `no evidence within ${round.deadlineAt - round.issuedAt} ms`,
    };
    this.deps.store.saveRound(record);
    this.deps.observe?.roundSettled?.(record);
    const device = this.deps.fleet.get(conn.deviceId);
    if (device) this.deps.fleet.apply(device, { kind: 'silent', standing: this.standing(conn) }, round.id);
  }

  /** How posture judges an outcome on this connection. */
  private standing(conn: DeviceConnection): Standing {
    if (conn.attested) return 'attested';
    const now = this.deps.clock.now();
    const trustedElsewhere = this.deps.connections
      .of(conn.deviceId)
      .some((c) => c !== conn && c.trustedUntil > now);
    return trustedElsewhere ? 'unattested-while-trusted-elsewhere' : 'unattested';
  }

  /** Once a newer connection of a device has attested, older ones have nothing left to do. */
  private retireOlderConnections(conn: DeviceConnection): void {
    for (const other of this.deps.connections.of(conn.deviceId)) {
      if (other !== conn && other.connectedAt <= conn.connectedAt) {
        this.deps.log.info(
          { device: conn.deviceId, client: other.clientId },
          'closing an older connection: a newer one attested',
        );
        other.link.disconnect();
      }
    }
  }

  /** A connection ended: its rounds can no longer be answered. */
  closed(conn: DeviceConnection): void {
    this.#periodic.cancel(conn);
    for (const round of conn.close()) {
      const record: RoundRecord = {
        ...roundRecord(conn, round),
        state: 'abandoned',
        detail: 'connection closed before evidence',
      };
      this.deps.store.saveRound(record);
      this.deps.observe?.roundSettled?.(record);
    }
  }

  /** The gateway is shutting down: rounds stay pending in the store, so the next start re-arms them. */
  shutdown(conn: DeviceConnection): void {
    this.#periodic.cancel(conn);
    conn.close();
  }
}
