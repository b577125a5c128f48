import type { Logger } from 'pino';
import type { Clock, Random } from '../../shared/clock.ts';
import { encodeSign1 } from '../../shared/cose/sign1.ts';
import type {
  Claims,
  Evidence,
  Hello,
  ResultCode,
  RoundReason,
  Status,
} from '../../shared/protocol/index.ts';
import { objectName, toHex } from '../../shared/tpm/index.ts';
import type { ActiveRound, DeviceConnection } from '../connections/device-connection.ts';
import type { Connections } from '../connections/registry.ts';
import type { Replies } from '../connections/replies.ts';
import type { MessageRouter } from '../connections/router.ts';
import type { DeviceRecord, RoundRecord } from '../model.ts';
import type { RuntimePolicy } from '../policy/runtime-policy.ts';
import type { Fleet } from '../posture/fleet.ts';
import { type Standing, trustedUntil } from '../posture/posture.ts';
import type { Store, StoreWriter } from '../store/store.ts';
import { type Appraisal, appraise, withSignature } from '../verifier/appraise.ts';
import type { EarSigner } from '../verifier/ear.ts';
import { checkHello, recordFromHello, saysHello } from '../verifier/hello.ts';
import { appraiseRoundMcus, type McuRoundOutcome, NO_MCUS } from '../verifier/mcu-round.ts';
import { CryptoPool, type CryptoWork } from '../verifier/pool.ts';
import { emptyVector, type TrustVector } from '../verifier/trust-vector.ts';
import { PeriodicRounds } from './periodic.ts';
import { planRound } from './round-plan.ts';

export interface AttestationDeps {
  readonly fleet: Fleet;
  /** Writes; `flush` makes an enrolment durable before it is affirmed. */
  readonly store: StoreWriter & Pick<Store, 'flush'>;
  readonly connections: Connections;
  readonly replies: Replies;
  readonly policy: () => RuntimePolicy;
  readonly ear: EarSigner;
  /** Where the AK's signature is checked and the EAR signed; default: here, synchronously. */
  readonly crypto?: CryptoWork;
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

/** A round answered with evidence on its connection, and the CPU time its appraisal took. */
interface Answered {
  readonly conn: DeviceConnection;
  readonly round: ActiveRound;
  readonly evidence: Evidence;
  /** The MCU sub-attesters the body carried, appraised once the quote vouched for it. */
  readonly mcus: McuRoundOutcome;
  readonly appraisalMs: number;
}

/** What a round concluded, as the result, the EAR and the stored round say it. */
interface Verdict {
  readonly status: Status;
  readonly trust: TrustVector;
  readonly codes: ResultCode[];
  readonly expires: number;
  readonly detail: string | undefined;
}

/** The AK a successful activation enrols: the round's candidate. */
const enrolledAk = (round: ActiveRound, now: number): NonNullable<DeviceRecord['ak']> => ({
  publicArea: round.akPublicArea,
  name: objectName(round.akPublicArea),
  enrolledAt: now,
});

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
  readonly #crypto: CryptoWork;

  constructor(private readonly deps: AttestationDeps) {
    this.#crypto = deps.crypto ?? new CryptoPool(deps.ear.key, 0);
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
   * round at a time; a batch simply waits for that answer). `roundId`: the id another gateway
   * chose when it asked for this round (gateway/scale), instead of a fresh one.
   */
  start(
    conn: DeviceConnection,
    reason: RoundReason,
    batchId?: string,
    roundId?: string,
  ): ActiveRound | undefined {
    const hello = conn.hello;
    if (!hello || conn.closed) return undefined;
    const inFlight = conn.rounds.oldest();
    if (inFlight) return inFlight;
    const policy = this.deps.policy();
    const { round, challenge } = planRound({
      reason,
      ...(batchId && { batchId }),
      ...(roundId && { id: roundId }),
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
    const device = this.deps.fleet.get(conn.deviceId)!;
    const started = performance.now();
    const appraisal = this.appraise(conn, round, evidence, device);
    // A body that is not a claims map fails PROTOCOL.md §2: `error`, nothing appraised, no
    // posture change; the round stays open until its deadline like after any malformed message.
    if (!appraisal.ok && appraisal.code === 'malformed') {
      this.deps.replies.refuse(conn, 'malformed', appraisal.detail, evidence.round);
      return;
    }
    conn.rounds.settle(id, 'answered');
    // The time this thread spent appraising: with the signature when it was checked here.
    let appraisalMs = performance.now() - started;
    let checkedHere = true;
    const settle = (valid: boolean) => {
      if (checkedHere) appraisalMs = performance.now() - started;
      // Another of the device's connections may have concluded a round meanwhile (the clock and
      // log this one was judged against moved on): then it is judged again, against those.
      const current = this.deps.fleet.get(conn.deviceId) ?? device;
      const final = withSignature(
        current === device ? appraisal : this.appraise(conn, round, evidence, current),
        valid,
      );
      const mcus = final.ok ? this.appraiseMcus(conn, round, final.claims, current) : NO_MCUS;
      this.conclude({ conn, round, evidence, mcus, appraisalMs }, final, current);
    };
    if (appraisal.signature) this.#crypto.verify(appraisal.signature, settle);
    else settle(true);
    checkedHere = false;
  }

  /** Everything of §5 but the AK's signature, which the appraisal leaves to the crypto pool. */
  private appraise(conn: DeviceConnection, round: ActiveRound, evidence: Evidence, device: DeviceRecord) {
    const ctx = conn.hello!;
    const clockAt = device.clock?.at;
    return appraise(
      evidence,
      {
        nonce: round.nonce,
        exporter: round.exporter,
        pcrs: round.pcrs,
        ...(round.activation && { activation: round.activation }),
      },
      {
        ekName: ctx.ekName,
        ak: { public: ctx.ak, publicArea: round.akPublicArea },
        swPcr: ctx.hello.swPcr,
        ...(device.clock && { clock: device.clock }),
        ...(clockAt !== undefined && { clockElapsedMs: this.deps.clock.now() - clockAt }),
        ...(device.swLog && { swLog: device.swLog }),
        genuineHardware: ctx.genuineHardware,
      },
      this.deps.policy().reference,
      { deferSignature: true },
    );
  }

  /** The MCUs the body carries are sub-attesters: appraised only once the quote vouched for it. */
  private appraiseMcus(
    conn: DeviceConnection,
    round: ActiveRound,
    claims: Claims,
    device: DeviceRecord,
  ): McuRoundOutcome {
    const policy = this.deps.policy();
    return appraiseRoundMcus(
      { claims: claims.mcus, nonce: round.nonce, deviceId: conn.deviceId, labels: device.labels },
      policy.mcus,
      policy.id,
    );
  }

  private conclude(x: Answered, a: Appraisal, device: DeviceRecord): void {
    if (!(a.ok && x.round.activation)) {
      this.record(x, a, device);
      return;
    }
    // A new enrolment is never affirmed unless it is stored: the AK is committed before anything
    // trusts it, so no device holds an EAR for an enrolment the gateway could forget (a full disk,
    // a crash before the write-behind commit). Every other write stays write-behind.
    this.deps.fleet.save({ ...device, ak: enrolledAk(x.round, this.deps.clock.now()) });
    this.deps.store.flush().then(
      () => this.record(x, a, this.deps.fleet.get(device.id)!),
      (err: Error) => this.notEnrolled(x, device.ak, err),
    );
  }

  /** The appraisal becomes posture, the round's record, the result and the next round. */
  private record(x: Answered, a: Appraisal, device: DeviceRecord): void {
    const { conn, round } = x;
    const { fleet, log, clock } = this.deps;
    const policy = this.deps.policy();
    const now = clock.now();
    // An MCU the policy makes the device's own can fail a device whose quote passed.
    const mcuFailure = x.mcus.deviceFailure;
    const status = mcuFailure ? 'contraindicated' : a.status;
    const codes: ResultCode[] = !a.ok ? [a.code] : mcuFailure ? [mcuFailure.code] : [];
    const expires = status === 'contraindicated' ? now : now + policy.expiryMs;
    conn.trustedUntil = trustedUntil({ status, expires }, policy.admitWarning);
    if (a.ok) {
      conn.attest();
      // The attested connection's hello becomes the device's record, with what the quote
      // established (the AK it activated, if it did, is already in the record).
      const hello = conn.hello!;
      const updated: DeviceRecord = {
        ...(saysHello(device, hello) ? device : recordFromHello(device, hello, now)),
        clock: { ...a.clock, at: round.issuedAt },
        swLog: a.swLog,
      };
      if (round.activation) log.info({ device: device.id }, 'AK activated and enrolled');
      if (a.rebooted) log.info({ device: device.id, resetCount: a.clock.resetCount }, 'device rebooted');
      fleet.apply(
        updated,
        mcuFailure
          ? { kind: 'refused', code: mcuFailure.code, standing: this.standing(conn) }
          : { kind: 'appraised', status: a.status, expires },
        round.id,
      );
      if (!conn.closed) this.retireOlderConnections(conn);
    } else {
      fleet.apply(device, { kind: 'refused', code: a.code, standing: this.standing(conn) }, round.id);
    }
    const detail = a.ok
      ? (mcuFailure?.detail ??
        (a.rebooted ? 'device rebooted (resetCount increased); software log replayed from 0' : undefined))
      : a.detail;
    this.settle(x, { status, trust: a.trust, codes, expires, detail });
  }

  /**
   * The store could not commit an enrolment: the record goes back to the AK it had (the queued
   * enrolment is replaced by it, so it is never committed), the device is answered `none`, and
   * its next round asks for the activation again.
   */
  private notEnrolled(x: Answered, previousAk: DeviceRecord['ak'], err: Error): void {
    const { ak: _enrolled, ...current } = this.deps.fleet.get(x.conn.deviceId)!;
    this.deps.fleet.save(previousAk ? { ...current, ak: previousAk } : current);
    const detail = `not affirmed: the gateway could not store the enrolment (${err.message}); the next round activates again`;
    this.deps.log.error({ device: x.conn.deviceId, round: x.round.id, err: err.message }, detail);
    const verdict: Verdict = {
      status: 'none',
      trust: emptyVector(),
      codes: [],
      expires: this.deps.clock.now(),
      detail,
    };
    this.settle(x, verdict);
  }

  /** Signs the EAR, stores the appraised round, answers `result` and arms the next round. */
  private settle({ conn, round, evidence, mcus, appraisalMs }: Answered, o: Verdict): void {
    const now = this.deps.clock.now();
    const unsigned = this.deps.ear.unsigned({
      deviceId: conn.deviceId,
      status: o.status,
      trust: o.trust,
      codes: o.codes,
      nonce: round.nonce,
      issuedAt: now,
      expires: o.expires,
      policyId: this.deps.policy().id,
      verifierBuild: this.deps.version,
      submods: mcus.submods,
    });
    this.#crypto.sign(unsigned.toBeSigned, (signature) => {
      const ear = encodeSign1(unsigned, signature);
      const record: RoundRecord = {
        ...roundRecord(conn, round),
        state: 'appraised',
        status: o.status,
        codes: o.codes,
        ...(o.detail && { detail: o.detail }),
        evidence: {
          exporter: round.exporter,
          body: evidence.body,
          attest: evidence.attest,
          sig: evidence.sig,
          ak: round.akPublicArea,
        },
        appraisedAt: now,
        ear,
        ...(mcus.results.length > 0 && { mcus: mcus.results }),
      };
      this.deps.store.saveRound(record);
      this.deps.observe?.roundSettled?.(record, appraisalMs);
      this.sendResult(conn, round, o.status, o.codes, o.expires, ear);
      this.#periodic.schedule(conn);
    });
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
