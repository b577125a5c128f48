import type { Logger } from 'pino';
import type { Clock, Random, Timer } from '../../shared/clock.ts';
import { type RoundReason, STATUSES, type Status } from '../../shared/protocol/index.ts';
import { toHex } from '../../shared/tpm/index.ts';
import type { ActiveRound, DeviceConnection } from '../connections/device-connection.ts';
import type { BatchRecord, RoundRecord, RoundState } from '../model.ts';
import type { StoreQueries, StoreWriter } from '../store/store.ts';
import type { AttestationObserver } from './attestation.ts';

// On-demand batches: one round per selected device, on the connection it should be asked on
// (connections/registry.ts), and the progress of those rounds. Progress is always computed from
// the store, so it survives a gateway restart: rounds left pending re-arm their deadlines at
// start (recovery.ts) and settle as stale or abandoned, and the batch completes then. Only the
// completion time of a batch that was open across a restart is approximated (from its rounds').

export interface BatchDeps {
  readonly store: StoreWriter & StoreQueries;
  /** The connection to ask a device on (Connections.askable). */
  readonly askable: (deviceId: string) => DeviceConnection | undefined;
  /** Attestation.start: a new round, or the one already in flight. */
  readonly startRound: (
    conn: DeviceConnection,
    reason: RoundReason,
    batchId: string,
  ) => ActiveRound | undefined;
  readonly completed?: (id: string, durationMs: number) => void;
  /**
   * Several gateways (gateway/scale): a round asked of whichever gateway holds a device this one
   * has no connection to; the batch waits for it like for its own. Undefined: unreachable.
   */
  readonly requestElsewhere?: (
    deviceId: string,
    batchId: string,
  ) => { readonly id: string; readonly deadlineAt: number } | undefined;
  readonly clock: Clock;
  readonly random: Random;
  readonly log: Logger;
}

/** What a batch was asked for, kept as given (the API's selector object). */
export type SelectorJson = Readonly<Record<string, unknown>>;

export type DeviceOutcome = RoundState | 'unreachable';

export interface BatchDeviceResult {
  readonly id: string;
  readonly round: string | null;
  readonly state: DeviceOutcome;
  readonly status: Status | null;
  readonly codes: readonly string[];
  readonly detail: string | null;
}

export interface BatchProgress {
  readonly id: string;
  readonly selector: SelectorJson;
  readonly createdAt: number;
  /** The latest deadline of its rounds: the batch is done by then at the latest. */
  readonly deadlineAt: number;
  readonly done: boolean;
  readonly completedAt: number | null;
  readonly devices: number;
  /** Rounds the batch waits for (issued for it, or joined because one was in flight). */
  readonly issued: number;
  /** Rounds whose evidence arrived and was appraised. */
  readonly answered: number;
  readonly appraised: Readonly<Record<Status, number>>;
  readonly stale: number;
  /** The connection closed before the device answered. */
  readonly abandoned: number;
  readonly pending: number;
  /** Selected devices without a connection that could be asked. */
  readonly unreachable: number;
  readonly results: readonly BatchDeviceResult[];
}

interface OpenBatch {
  readonly createdAt: number;
  readonly pending: Set<string>;
  timer?: Timer;
}

/** Finished batches remember their completion time in memory, for this many batches. */
const REMEMBERED = 1000;
/** A sweep runs this long after the batch's deadline, then every SWEEP_MS until it is done. */
const SWEEP_MS = 1000;

export class BatchTracker implements AttestationObserver {
  private readonly open = new Map<string, OpenBatch>();
  /** Round id → batches waiting for it (a round in flight can serve several batches). */
  private readonly waiting = new Map<string, Set<string>>();
  private readonly completedAt = new Map<string, number>();

  constructor(private readonly deps: BatchDeps) {}

  /** Starts a round on each device's connection; returns the stored batch. */
  start(selector: SelectorJson, deviceIds: readonly string[]): BatchRecord {
    const now = this.deps.clock.now();
    const id = toHex(this.deps.random(8));
    const rounds = new Set<string>();
    const unreachable: string[] = [];
    let deadlineAt = now;
    for (const deviceId of deviceIds) {
      const conn = this.deps.askable(deviceId);
      const round = conn
        ? this.deps.startRound(conn, 'on-demand', id)
        : this.deps.requestElsewhere?.(deviceId, id);
      if (round === undefined) {
        unreachable.push(deviceId);
        continue;
      }
      rounds.add(round.id);
      deadlineAt = Math.max(deadlineAt, round.deadlineAt);
    }
    const record: BatchRecord = {
      id,
      selector: JSON.stringify(selector),
      createdAt: now,
      deadlineAt,
      rounds: [...rounds],
      unreachable,
    };
    this.deps.store.saveBatch(record);
    this.deps.log.info(
      { batch: id, selector, rounds: rounds.size, unreachable: unreachable.length },
      'on-demand batch started',
    );
    if (rounds.size === 0) this.complete(id, now, now);
    else {
      const open: OpenBatch = { createdAt: now, pending: new Set(rounds) };
      this.open.set(id, open);
      for (const r of rounds) {
        const set = this.waiting.get(r) ?? new Set();
        set.add(id);
        this.waiting.set(r, set);
      }
      this.armSweep(id, open, deadlineAt);
    }
    return record;
  }

  roundSettled(round: RoundRecord): void {
    this.settledElsewhere(round.id);
  }

  /** A round a batch here may wait for settled on another gateway, or was withdrawn. */
  settledElsewhere(roundId: string): void {
    const batches = this.waiting.get(roundId);
    if (!batches) return;
    this.waiting.delete(roundId);
    const now = this.deps.clock.now();
    for (const id of batches) {
      const open = this.open.get(id);
      open?.pending.delete(roundId);
      if (open && open.pending.size === 0) this.complete(id, open.createdAt, now);
    }
  }

  get openCount(): number {
    return this.open.size;
  }

  /** Pending and settled rounds of an open batch (for live progress without a store read). */
  openProgress(id: string): { readonly pending: number } | undefined {
    const open = this.open.get(id);
    return open && { pending: open.pending.size };
  }

  async progress(id: string): Promise<BatchProgress | undefined> {
    const batch = await this.deps.store.batch(id);
    if (!batch) return undefined;
    const appraised = Object.fromEntries(STATUSES.map((s) => [s, 0])) as Record<Status, number>;
    const counts = { answered: 0, stale: 0, abandoned: 0, pending: 0 };
    const results: BatchDeviceResult[] = [];
    let lastSettled = batch.createdAt;
    const byId = new Map((await this.deps.store.rounds(batch.rounds)).map((r) => [r.id, r]));
    for (const roundId of batch.rounds) {
      const r = byId.get(roundId);
      if (!r) continue;
      if (r.state === 'appraised') {
        counts.answered++;
        appraised[r.status ?? 'none']++;
      } else counts[r.state]++;
      if (r.state !== 'pending') lastSettled = Math.max(lastSettled, r.appraisedAt ?? r.deadlineAt);
      results.push({
        id: r.deviceId,
        round: r.id,
        state: r.state,
        status: r.status ?? null,
        codes: r.codes,
        detail: r.detail ?? null,
      });
    }
    for (const deviceId of batch.unreachable) {
      results.push({
        id: deviceId,
        round: null,
        state: 'unreachable',
        status: null,
        codes: [],
        detail: 'not connected (or not past hello) when the batch started',
      });
    }
    const done = counts.pending === 0;
    return {
      id,
      selector: parseSelectorJson(batch.selector),
      createdAt: batch.createdAt,
      deadlineAt: batch.deadlineAt,
      done,
      completedAt: done ? (this.completedAt.get(id) ?? lastSettled) : null,
      devices: results.length,
      issued: batch.rounds.length,
      answered: counts.answered,
      appraised,
      stale: counts.stale,
      abandoned: counts.abandoned,
      pending: counts.pending,
      unreachable: batch.unreachable.length,
      results,
    };
  }

  close(): void {
    for (const b of this.open.values()) b.timer?.cancel();
    this.open.clear();
    this.waiting.clear();
  }

  /**
   * Rounds settle through the observer, but a batch must end even if one never reports (rounds
   * recovered after a restart settle through the store): a sweep just after the batch's deadline
   * reads the store and completes the batch all the same.
   */
  private armSweep(id: string, open: OpenBatch, at: number): void {
    open.timer = this.deps.clock.after(at - this.deps.clock.now() + 100, () => {
      this.sweep(id, open).catch((err: Error) => {
        this.deps.log.error({ batch: id, err: err.message }, 'batch sweep failed; retrying');
        if (this.open.has(id)) this.armSweep(id, open, this.deps.clock.now() + SWEEP_MS);
      });
    });
  }

  private async sweep(id: string, open: OpenBatch): Promise<void> {
    for (const r of await this.deps.store.rounds([...open.pending])) {
      if (r.state !== 'pending') {
        open.pending.delete(r.id);
        this.waiting.get(r.id)?.delete(id);
      }
    }
    if (!this.open.has(id)) return;
    if (open.pending.size === 0) this.complete(id, open.createdAt, this.deps.clock.now());
    else this.armSweep(id, open, this.deps.clock.now() + SWEEP_MS);
  }

  private complete(id: string, createdAt: number, now: number): void {
    this.open.get(id)?.timer?.cancel();
    this.open.delete(id);
    this.completedAt.set(id, now);
    if (this.completedAt.size > REMEMBERED) this.completedAt.delete(this.completedAt.keys().next().value!);
    this.deps.completed?.(id, now - createdAt);
    this.deps.log.info({ batch: id, ms: now - createdAt }, 'on-demand batch complete');
  }
}

function parseSelectorJson(text: string): SelectorJson {
  try {
    const v = JSON.parse(text) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as SelectorJson;
  } catch {
    // A batch written by other code: show its selector text as is.
  }
  return { text };
}
