import type { Logger } from 'pino';
import type { Clock, Random, Timer } from '../../shared/clock.ts';
import { toHex } from '../../shared/tpm/index.ts';
import type { Connections } from '../connections/registry.ts';
import type { RoundRecord } from '../model.ts';
import type { Attestation } from '../rounds/attestation.ts';
import type { BatchTracker } from '../rounds/batches.ts';
import type { SharedStore } from '../store/postgres.ts';
import type { ControlBus } from './bus.ts';

// On-demand rounds across gateways. A batch asked of one gateway starts rounds on the devices it
// holds and *requests* a round for each of the others: a round row in PostgreSQL, its id chosen
// by the asker (so the batch lists it and waits for it like for its own), marked requested. Then
// the doorbell: every gateway takes the requested rounds of the devices it holds (one UPDATE, so
// one gateway per round) and issues them under those ids; batch progress reads the rounds from
// PostgreSQL, so the asker reports the whole batch. A round nobody takes is withdrawn (the device
// is listed unreachable in its batch) once every live gateway has answered, or at the request's
// deadline. The request is written first and rung after: with Redis away, requests wait in
// PostgreSQL and are taken when it is back (every gateway scans again then).

export interface FleetRoundsDeps {
  readonly me: string;
  readonly store: SharedStore;
  readonly bus: ControlBus;
  readonly connections: Connections;
  readonly attestation: Attestation;
  readonly batches: BatchTracker;
  /** The gateways alive now (membership.ts). */
  readonly live: () => ReadonlySet<string>;
  readonly requestTtlMs: number;
  readonly clock: Clock;
  readonly random: Random;
  readonly log: Logger;
  /** Rounds settled here without an appraisal (observers: events, metrics, batches). */
  readonly settled: (round: RoundRecord) => void;
}

/** How long a withdrawn round's row outlives the withdrawal (see SharedStore.withdrawRequested). */
const FORGET_AFTER_MS = 5000;

interface Asked {
  readonly rounds: Set<string>;
  readonly answered: Set<string>;
  deadlineAt: number;
  timer?: Timer;
}

/** What a requested round looks like before a gateway issues it: no nonce, nothing asked yet. */
export function requestedRound(
  id: string,
  deviceId: string,
  batchId: string,
  now: number,
  ttlMs: number,
): RoundRecord {
  return {
    id,
    deviceId,
    batchId,
    reason: 'on-demand',
    nonce: new Uint8Array(0),
    pcrs: [],
    logs: {},
    activate: false,
    issuedAt: now,
    deadlineAt: now + ttlMs,
    state: 'pending',
    codes: [],
    detail: 'asked of the gateway that holds the device; not issued yet',
  };
}

export class FleetRounds {
  private readonly asked = new Map<string, Asked>();
  /** Taken rounds waiting for the round in flight on their device's connection. */
  private readonly behind = new Map<string, RoundRecord[]>();
  private readonly toRing = new Set<string>();
  private scanning: Promise<void> | undefined;
  private rescan = false;
  private stopped = false;

  constructor(private readonly deps: FleetRoundsDeps) {
    deps.bus.on('requested', (m) => {
      this.scan().then(() => deps.bus.toGateway(m.from, { t: 'answered', from: deps.me, batch: m.batch }));
    });
    deps.bus.on('answered', (m) => this.answered(m.batch, m.from));
  }

  /** BatchTracker's requestElsewhere: a round for a device with no connection here. */
  request(deviceId: string, batchId: string): { id: string; deadlineAt: number } {
    const { clock, random, store, requestTtlMs } = this.deps;
    const now = clock.now();
    const round = requestedRound(toHex(random(16)), deviceId, batchId, now, requestTtlMs);
    store.requestRound(round);
    this.track(batchId, [round]);
    this.ringSoon(batchId);
    return { id: round.id, deadlineAt: round.deadlineAt };
  }

  /** Rings for this batch once the batch that is being built is queued (after the current tick). */
  private ringSoon(batchId: string): void {
    if (this.toRing.size === 0) this.deps.clock.after(0, () => this.ring());
    this.toRing.add(batchId);
  }

  /** Rings the doorbell for the batches requested since, once their rows are committed. */
  private ring(): void {
    const batches = [...this.toRing];
    this.toRing.clear();
    this.deps.store.flush().then(
      () => {
        for (const batch of batches)
          void this.deps.bus.toFleet({ t: 'requested', from: this.deps.me, batch });
      },
      (err: Error) =>
        // The rows wait in the store's queue; every gateway scans when the bus or store is back.
        this.deps.log.warn({ err: err.message, batches }, 'requested rounds not committed yet; not rung'),
    );
  }

  private track(batchId: string, rounds: readonly RoundRecord[]): void {
    const a: Asked = this.asked.get(batchId) ?? { rounds: new Set(), answered: new Set(), deadlineAt: 0 };
    this.asked.set(batchId, a);
    for (const r of rounds) {
      a.rounds.add(r.id);
      a.deadlineAt = Math.max(a.deadlineAt, r.deadlineAt);
    }
    a.timer?.cancel();
    a.timer = this.deps.clock.after(a.deadlineAt - this.deps.clock.now(), () => this.withdraw(batchId));
  }

  /**
   * Takes the requested rounds of every device held here and issues them; `only`: of these
   * devices (one that just attested). Scans never overlap; one asked for meanwhile runs after.
   */
  scan(only?: readonly string[]): Promise<void> {
    if (this.scanning && only === undefined) {
      this.rescan = true;
      return this.scanning;
    }
    const run = async () => {
      const { connections, store, log } = this.deps;
      const held = only ?? [...new Set([...connections.all()].map((c) => c.deviceId))];
      const askable = held.filter((id) => connections.askable(id) !== undefined);
      try {
        for (const r of await store.takeRequested(askable, this.deps.clock.now())) this.issue(r);
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'taking requested rounds failed; taken at the next scan');
      }
    };
    const p = run().finally(() => {
      if (only !== undefined) return;
      this.scanning = undefined;
      if (this.rescan && !this.stopped) {
        this.rescan = false;
        void this.scan();
      }
    });
    if (only === undefined) this.scanning = p;
    return p;
  }

  /** Issues a taken round under its id, or after the round in flight on the connection. */
  private issue(r: RoundRecord): void {
    const conn = this.deps.connections.askable(r.deviceId);
    const started = conn && this.deps.attestation.start(conn, 'on-demand', r.batchId, r.id);
    if (!started) {
      this.abandon(r, 'the device left this gateway before its requested round was issued');
      return;
    }
    if (started.id === r.id) return;
    // A device quotes one round at a time: this one goes when the one in flight settles.
    this.behind.set(r.deviceId, [...(this.behind.get(r.deviceId) ?? []), r]);
  }

  private abandon(r: RoundRecord, detail: string): void {
    const record: RoundRecord = { ...r, state: 'abandoned', detail };
    this.deps.store.saveRound(record);
    this.deps.settled(record);
  }

  /** Observer: a round settled here; a taken round waiting behind it goes now. */
  roundSettled(r: RoundRecord): void {
    const waiting = this.behind.get(r.deviceId);
    if (!waiting) return;
    this.behind.delete(r.deviceId);
    // After the settling round's result went out, not in the middle of it.
    this.deps.clock.after(0, () => {
      for (const w of waiting) this.issue(w);
    });
  }

  /** A connection ended here: taken rounds waiting for it go where they can, or are abandoned. */
  connectionEnded(deviceId: string): void {
    const waiting = this.behind.get(deviceId);
    if (!waiting || this.deps.connections.askable(deviceId)) return;
    this.behind.delete(deviceId);
    for (const w of waiting)
      this.abandon(w, 'the device left this gateway before its requested round was issued');
  }

  private answered(batchId: string, from: string): void {
    const a = this.asked.get(batchId);
    if (!a) return;
    a.answered.add(from);
    if ([...this.deps.live()].every((g) => a.answered.has(g))) this.withdraw(batchId);
  }

  /** Withdraws the rounds of a batch nobody took: their devices are unreachable. */
  private withdraw(batchId: string): void {
    const a = this.asked.get(batchId);
    if (!a || this.stopped) return;
    a.timer?.cancel();
    const { store, clock } = this.deps;
    store.withdrawRequested([...a.rounds], clock.now()).then(
      (gone) => {
        this.asked.delete(batchId);
        for (const r of gone) this.deps.batches.settledElsewhere(r.id);
        const ids = gone.map((r) => r.id);
        clock.after(FORGET_AFTER_MS, () => {
          store.forgetWithdrawn(ids, clock.now()).catch(() => {
            // Left for a later withdrawal of the same batch (restart, adoption) to delete.
          });
        });
        if (gone.length > 0)
          this.deps.log.info(
            { batch: batchId, unreachable: gone.map((r) => r.deviceId) },
            'no gateway holds these devices: unreachable for this batch',
          );
      },
      (err: Error) => {
        this.deps.log.warn(
          { batch: batchId, err: err.message },
          'withdrawing requested rounds failed; retried',
        );
        a.timer = this.deps.clock.after(1000, () => this.withdraw(batchId));
      },
    );
  }

  /** Requested rounds this gateway owns (asked before a restart, or adopted): wait for them again. */
  resume(rounds: readonly RoundRecord[]): void {
    const byBatch = new Map<string, RoundRecord[]>();
    for (const r of rounds) if (r.batchId) byBatch.set(r.batchId, [...(byBatch.get(r.batchId) ?? []), r]);
    for (const [batchId, list] of byBatch) {
      this.track(batchId, list);
      this.ringSoon(batchId);
    }
  }

  /**
   * The bus is back: take what was requested meanwhile, and ring again for this gateway's open
   * requests (their doorbells may have been lost, and the answers with them).
   */
  busUp(): void {
    void this.scan();
    for (const batchId of this.asked.keys()) this.ringSoon(batchId);
  }

  close(): void {
    this.stopped = true;
    for (const a of this.asked.values()) a.timer?.cancel();
    this.asked.clear();
  }
}
