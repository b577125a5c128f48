import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import {
  channelExporter,
  type ErrorMessage,
  type Evidence,
  type GatewayMessage,
  type Hello,
  RESULT_CODES,
  type ResultCode,
  type RoundReason,
  type Status,
} from '../../shared/protocol/index.ts';
import { makeCredential, objectName, toHex } from '../../shared/tpm/index.ts';
import type { ActiveRound, DeviceSession } from '../connections/device-connection.ts';
import type { DeviceRecord, RoundRecord } from '../model.ts';
import type { RuntimePolicy } from '../policy/runtime-policy.ts';
import type { Fleet } from '../posture/fleet.ts';
import type { PostureStore } from '../store/store.ts';
import { type Appraisal, appraise } from '../verifier/appraise.ts';
import type { EarSigner } from '../verifier/ear.ts';
import { checkHello } from '../verifier/hello.ts';

export interface AttestationDeps {
  readonly fleet: Fleet;
  readonly store: PostureStore;
  readonly policy: () => RuntimePolicy;
  readonly ear: EarSigner;
  readonly send: (session: DeviceSession, message: GatewayMessage) => void;
  /** Other live sessions of the same device. */
  readonly sessionsOf: (deviceId: string) => readonly DeviceSession[];
  readonly disconnect: (session: DeviceSession) => void;
  readonly log: Logger;
  readonly version: string;
  readonly observe?: AttestationObserver;
}

/** Metrics and batch progress listen here. */
export interface AttestationObserver {
  roundIssued?(round: RoundRecord): void;
  roundSettled?(round: RoundRecord, appraisalMs?: number): void;
}

// Failures up to binding-mismatch may come from anyone who can open a connection with a
// device's id; from pcr-selection-mismatch on, the evidence is signed by the enrolled AK and bound
// to the connection, so the failure is the device's own statement and changes its posture.
const FIRST_AUTHENTICATED = RESULT_CODES.indexOf('pcr-selection-mismatch');
const isAuthenticatedFailure = (code: ResultCode) => RESULT_CODES.indexOf(code) >= FIRST_AUTHENTICATED;

/** The stored form of a round, from what the connection keeps in memory: no read-back. */
const roundRecord = (session: DeviceSession, r: ActiveRound): RoundRecord => ({
  id: r.id,
  deviceId: session.deviceId,
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
  constructor(private readonly deps: AttestationDeps) {}

  /** Answers `error` on this connection; nothing else changes. */
  refuse(session: DeviceSession, code: ResultCode, detail: string, round?: Uint8Array): void {
    const message: ErrorMessage = { t: 'error', code, detail, ...(round && { round }) };
    this.deps.log.info({ device: session.deviceId, client: session.clientId, code, detail }, 'refused');
    this.deps.send(session, message);
  }

  /** Refuses the connection for good: the error first, then the disconnect once it is written. */
  private refuseConnection(session: DeviceSession, code: ResultCode, detail: string): void {
    this.refuse(session, code, detail);
    setImmediate(() => this.deps.disconnect(session));
  }

  onHello(session: DeviceSession, hello: Hello): void {
    if (session.hello) {
      this.refuse(
        session,
        'malformed',
        'hello was already received on this connection; send it once after CONNECT',
      );
      return;
    }
    const known = this.deps.fleet.get(session.deviceId);
    const outcome = checkHello(hello, session.deviceId, this.deps.policy().admission, known, Date.now());
    if (!outcome.ok) {
      this.refuseConnection(session, outcome.code, outcome.detail);
      return;
    }
    if (outcome.firstUseUnderOpen) {
      this.deps.log.warn(
        { device: session.deviceId, ekHash: outcome.context.ekHash },
        'ADMISSION IS OPEN: a device unknown to this gateway was admitted on first use',
      );
    }
    this.deps.fleet.save(outcome.device);
    session.hello = outcome.context;
    this.startRound(session, 'onboard');
  }

  /**
   * Issues a round on this connection, or returns the one already in flight (a device quotes one
   * round at a time; a batch simply waits for that answer).
   */
  startRound(session: DeviceSession, reason: RoundReason, batchId?: string): string | undefined {
    const ctx = session.hello;
    if (!ctx || session.closed) return undefined;
    const inFlight = session.rounds.values().next();
    if (!inFlight.done) return inFlight.value.id;

    const policy = this.deps.policy();
    const device = this.deps.fleet.get(session.deviceId)!;
    const now = Date.now();
    const nonce = new Uint8Array(randomBytes(32));
    const pcrs = [...new Set([...policy.pcrs, ctx.hello.swPcr])].sort((a, b) => a - b);
    const akName = objectName(ctx.hello.ak);
    const enrolled = device.ak !== undefined && Buffer.compare(device.ak.name, akName) === 0;
    const secret = enrolled ? undefined : new Uint8Array(randomBytes(32));
    const activate = secret && makeCredential(ctx.ek, akName, secret);
    // The first round of a connection replays the whole software log: a new connection may follow
    // a reboot, after which the agent's log restarts. Later rounds fetch only what is new.
    const fromScratch =
      reason === 'onboard' || device.swLog === undefined || device.reasons.includes('log-mismatch');
    const logs = { sw: fromScratch ? 0 : device.swLog!.count };
    const round: ActiveRound = {
      id: toHex(randomBytes(16)),
      nonce,
      exporter: channelExporter(session.socket, nonce),
      pcrs,
      logs,
      reason,
      ...(batchId && { batchId }),
      issuedAt: now,
      deadlineAt: now + policy.deadlineMs,
      ...(secret && { activation: secret }),
      akPublicArea: ctx.hello.ak,
    };
    round.timer = setTimeout(() => this.onDeadline(session, round.id), policy.deadlineMs);
    session.rounds.set(round.id, round);
    const record = roundRecord(session, round);
    this.deps.store.saveRound(record);
    this.deps.observe?.roundIssued?.(record);
    this.deps.send(session, {
      t: 'challenge',
      round: Buffer.from(round.id, 'hex'),
      nonce,
      reason,
      pcrs,
      logs,
      ...(activate && { activate: { blob: activate.blob, secret: activate.secret } }),
      deadline: policy.deadlineMs,
    });
    return round.id;
  }

  onEvidence(session: DeviceSession, evidence: Evidence): void {
    const id = toHex(evidence.round);
    const round = session.rounds.get(id);
    if (!round) {
      const settled = session.settledAs(id);
      if (settled === 'answered') {
        this.refuse(session, 'round-replayed', `round ${id} was already answered`, evidence.round);
        return;
      }
      if (settled === 'expired') {
        this.refuse(session, 'round-expired', `round ${id} passed its deadline`, evidence.round);
        return;
      }
      this.refuse(session, 'round-unknown', `round ${id} was not issued on this connection`, evidence.round);
      return;
    }
    const now = Date.now();
    if (now > round.deadlineAt) {
      this.expire(session, round, now);
      this.refuse(session, 'round-expired', `round ${id} passed its deadline`, evidence.round);
      return;
    }
    const ctx = session.hello!;
    const policy = this.deps.policy();
    const device = this.deps.fleet.get(session.deviceId)!;
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
        ...(device.swLog && { swLog: device.swLog }),
        genuineHardware: ctx.genuineHardware,
      },
      policy.reference,
    );
    // A body that is not a claims map fails PROTOCOL.md §2: `error`, nothing appraised, no
    // posture change; the round stays open until its deadline like after any malformed message.
    // (appraise() is pure, so asking it first costs nothing but the decode it does anyway.)
    if (!appraisal.ok && appraisal.code === 'malformed') {
      this.refuse(session, 'malformed', appraisal.detail, evidence.round);
      return;
    }
    session.settle(id, 'answered');
    const appraisalMs = performance.now() - started;
    this.conclude(session, round, evidence, appraisal, device, now, appraisalMs);
  }

  private conclude(
    session: DeviceSession,
    round: ActiveRound,
    evidence: Evidence,
    a: Appraisal,
    device: DeviceRecord,
    now: number,
    appraisalMs: number,
  ): void {
    const policy = this.deps.policy();
    const codes: ResultCode[] = a.ok ? [] : [a.code];
    const expires = a.ok ? now + policy.expiryMs : now;
    const detail = a.ok
      ? a.rebooted
        ? 'device rebooted (resetCount increased); software log replayed from 0'
        : undefined
      : a.detail;

    if (a.ok) {
      const admitted = a.status === 'affirming' || policy.admitWarning;
      session.trustedUntil = admitted ? expires : 0;
      session.attested = true;
      const enrolled = round.activation
        ? {
            ...device,
            ak: { publicArea: round.akPublicArea, name: objectName(round.akPublicArea), enrolledAt: now },
          }
        : device;
      if (round.activation) this.deps.log.info({ device: device.id }, 'AK activated and enrolled');
      if (a.rebooted)
        this.deps.log.info({ device: device.id, resetCount: a.clock.resetCount }, 'device rebooted');
      this.deps.fleet.transition(
        { ...enrolled, clock: a.clock, swLog: a.swLog },
        a.status,
        codes,
        now,
        expires,
        round.id,
      );
      this.retireOlderSessions(session);
    } else {
      session.trustedUntil = 0;
      const speaksForDevice =
        isAuthenticatedFailure(a.code) ||
        session.attested ||
        ((device.posture === 'enrolling' || device.posture === 'unknown') &&
          !this.hasTrustedSession(device.id));
      if (speaksForDevice)
        this.deps.fleet.transition(device, 'contraindicated', codes, now, undefined, round.id);
    }

    const record: RoundRecord = {
      ...roundRecord(session, round),
      state: 'appraised',
      status: a.status,
      codes,
      ...(detail && { detail }),
      evidence: { exporter: round.exporter, body: evidence.body, attest: evidence.attest, sig: evidence.sig },
      appraisedAt: now,
    };
    this.deps.store.saveRound(record);
    this.deps.observe?.roundSettled?.(record, appraisalMs);
    this.sendResult(session, round, a.status, codes, expires, a.trust, now);
    this.schedulePeriodic(session);
  }

  private sendResult(
    session: DeviceSession,
    round: ActiveRound,
    status: Status,
    reasons: ResultCode[],
    expires: number,
    trust: Appraisal['trust'],
    now: number,
  ): void {
    const policy = this.deps.policy();
    const ear = this.deps.ear.sign({
      deviceId: session.deviceId,
      status,
      trust,
      codes: reasons,
      nonce: round.nonce,
      issuedAt: now,
      expires,
      policyId: policy.id,
      verifierBuild: this.deps.version,
    });
    this.deps.send(session, {
      t: 'result',
      round: Buffer.from(round.id, 'hex'),
      status,
      reasons,
      expires,
      ear,
    });
  }

  private expire(session: DeviceSession, round: ActiveRound, now: number): void {
    session.settle(round.id, 'expired');
    session.trustedUntil = 0;
    const record: RoundRecord = {
      ...roundRecord(session, round),
      state: 'stale',
      codes: ['stale'],
      detail: `no evidence within ${round.deadlineAt - round.issuedAt} ms`,
    };
    this.deps.store.saveRound(record);
    this.deps.observe?.roundSettled?.(record);
    const device = this.deps.fleet.get(session.deviceId);
    if (device && session.attested)
      this.deps.fleet.transition(device, 'stale', ['stale'], now, undefined, round.id);
  }

  private onDeadline(session: DeviceSession, roundId: string): void {
    const round = session.rounds.get(roundId);
    if (!round || session.closed) return;
    this.expire(session, round, Date.now());
    this.refuse(
      session,
      'stale',
      `round ${roundId} passed its deadline without evidence`,
      Buffer.from(roundId, 'hex'),
    );
    this.schedulePeriodic(session);
  }

  /**
   * Periodic re-attestation on the same connection. The first delay is spread over half an
   * interval so that devices which connected together (a gateway restart) do not stay in step.
   */
  private schedulePeriodic(session: DeviceSession): void {
    if (session.closed || session.periodic) return;
    const { periodicMs, jitter } = this.deps.policy();
    const first = session.attested && !session.periodicStarted;
    const factor = first ? 0.5 + Math.random() * 0.5 : 1 + (Math.random() * 2 - 1) * jitter;
    session.periodicStarted = true;
    session.periodic = setTimeout(() => {
      session.periodic = undefined;
      this.startRound(session, 'periodic');
    }, periodicMs * factor);
    session.periodic.unref();
  }

  private hasTrustedSession(deviceId: string): boolean {
    const now = Date.now();
    return this.deps.sessionsOf(deviceId).some((s) => s.trustedUntil > now);
  }

  /** Once a newer connection of a device has attested, older ones have nothing left to do. */
  private retireOlderSessions(session: DeviceSession): void {
    for (const other of this.deps.sessionsOf(session.deviceId)) {
      if (other !== session && other.connectedAt <= session.connectedAt) {
        this.deps.log.info(
          { device: session.deviceId, client: other.clientId },
          'closing an older connection: a newer one attested',
        );
        this.deps.disconnect(other);
      }
    }
  }

  /** A connection ended: its rounds can no longer be answered. */
  onClosed(session: DeviceSession): void {
    for (const round of session.rounds.values()) {
      this.deps.store.saveRound({
        ...roundRecord(session, round),
        state: 'abandoned',
        detail: 'connection closed before evidence',
      });
    }
    session.close();
  }
}
