import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { type RoundReason, STATUSES, type Status } from '../../shared/protocol/index.ts';
import type { DeviceSession } from '../connections/device-connection.ts';
import type { BatchRecord, RoundRecord, RoundState } from '../model.ts';
import type { PostureStore } from '../store/store.ts';
import type { AttestationObserver } from './attestation.ts';

// On-demand batches: one round per selected device, on the connection it already has, and the
// progress of those rounds. Progress is always computed from the store, so it survives a gateway
// restart: rounds left pending re-arm their deadlines at start (attestation.recover) and settle
// as stale or abandoned, and the batch completes then. Only the completion time of a batch that
// was open across a restart is approximated (from its rounds' times).

export interface BatchDeps {
  readonly store: PostureStore;
  readonly sessionsOf: (deviceId: string) => readonly DeviceSession[];
  /** Attestation.startRound: a new round, or the id of the one already in flight. */
  readonly startRound: (session: DeviceSession, reason: RoundReason, batchId: string) => string | undefined;
  readonly completed?: (durationMs: number) => void;
  readonly log: Logger;
}

/** What a batch was asked for, kept as given (the API's selector object). */
export type SelectorJson = Readonly<Record<string, unknown>>;

/**
 * BatchRecord has no field for devices that could not be asked (not connected, or connected but
 * not yet past hello); they travel with the selector, as JSON, so that they are persisted too.
 */
interface StoredSelector {
  readonly selector: SelectorJson;
  readonly unreachable: readonly string[];
}

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
  timer?: NodeJS.Timeout;
}

/** Finished batches remember their completion time in memory, for this many batches. */
const REMEMBERED = 1000;

export class BatchTracker implements AttestationObserver {
  private readonly open = new Map<string, OpenBatch>();
  /** Round id → batches waiting for it (a round in flight can serve several batches). */
  private readonly waiting = new Map<string, Set<string>>();
  private readonly completedAt = new Map<string, number>();

  constructor(private readonly deps: BatchDeps) {}

  /** Starts a round on each device's current connection; returns the stored batch. */
  start(selector: SelectorJson, deviceIds: readonly string[], now = Date.now()): BatchRecord {
    const id = randomBytes(8).toString('hex');
    const rounds: string[] = [];
    const unreachable: string[] = [];
    let deadlineAt = now;
    for (const deviceId of deviceIds) {
      const session = askable(this.deps.sessionsOf(deviceId));
      const roundId = session && this.deps.startRound(session, 'on-demand', id);
      const round = roundId === undefined ? undefined : session!.rounds.get(roundId);
      if (roundId === undefined || round === undefined) {
        unreachable.push(deviceId);
        continue;
      }
      if (!rounds.includes(roundId)) rounds.push(roundId);
      deadlineAt = Math.max(deadlineAt, round.deadlineAt);
    }
    const record: BatchRecord = {
      id,
      selector: JSON.stringify({ selector, unreachable } satisfies StoredSelector),
      createdAt: now,
      deadlineAt,
      rounds,
    };
    this.deps.store.saveBatch(record);
    this.deps.log.info(
      { batch: id, selector, rounds: rounds.length, unreachable: unreachable.length },
      'on-demand batch started',
    );
    if (rounds.length === 0) this.complete(id, now, now);
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
    const batches = this.waiting.get(round.id);
    if (!batches) return;
    this.waiting.delete(round.id);
    const now = Date.now();
    for (const id of batches) {
      const open = this.open.get(id);
      open?.pending.delete(round.id);
      if (open && open.pending.size === 0) this.complete(id, open.createdAt, now);
    }
  }

  get openCount(): number {
    return this.open.size;
  }

  progress(id: string): BatchProgress | undefined {
    const batch = this.deps.store.batch(id);
    if (!batch) return undefined;
    const stored = parseStored(batch.selector);
    const appraised = Object.fromEntries(STATUSES.map((s) => [s, 0])) as Record<Status, number>;
    const counts = { answered: 0, stale: 0, abandoned: 0, pending: 0 };
    const results: BatchDeviceResult[] = [];
    let lastSettled = batch.createdAt;
    for (const roundId of batch.rounds) {
      const r = this.deps.store.round(roundId);
      if (!r) continue;
      if (r.state === 'appraised') {
        counts.answered++;
        appraised[r.status ?? 'none']++;
      } else if (r.state === 'pending') counts.pending++;
      else counts[r.state]++;
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
    for (const deviceId of stored.unreachable) {
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
      selector: stored.selector,
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
      unreachable: stored.unreachable.length,
      results,
    };
  }

  close(): void {
    for (const b of this.open.values()) if (b.timer) clearTimeout(b.timer);
    this.open.clear();
    this.waiting.clear();
  }

  /**
   * A round abandoned because its connection closed settles without an observer call; a sweep
   * just after the batch's deadline reads the store and completes the batch all the same.
   */
  private armSweep(id: string, open: OpenBatch, at: number): void {
    open.timer = setTimeout(
      () => {
        for (const r of [...open.pending]) {
          if (this.deps.store.round(r)?.state !== 'pending') {
            open.pending.delete(r);
            this.waiting.get(r)?.delete(id);
          }
        }
        if (open.pending.size === 0) this.complete(id, open.createdAt, Date.now());
        else this.armSweep(id, open, Date.now() + 1000);
      },
      Math.max(0, at - Date.now()) + 100,
    );
    open.timer.unref();
  }

  private complete(id: string, createdAt: number, now: number): void {
    const open = this.open.get(id);
    if (open?.timer) clearTimeout(open.timer);
    this.open.delete(id);
    this.completedAt.set(id, now);
    if (this.completedAt.size > REMEMBERED) this.completedAt.delete(this.completedAt.keys().next().value!);
    this.deps.completed?.(now - createdAt);
    this.deps.log.info({ batch: id, ms: now - createdAt }, 'on-demand batch complete');
  }
}

/** The connection to ask: the newest one past hello (an older one is retired once it attests). */
function askable(sessions: readonly DeviceSession[]): DeviceSession | undefined {
  for (let i = sessions.length - 1; i >= 0; i--) {
    const s = sessions[i]!;
    if (!s.closed && s.hello) return s;
  }
  return undefined;
}

function parseStored(text: string): StoredSelector {
  try {
    const v = JSON.parse(text) as Partial<StoredSelector>;
    if (v && typeof v === 'object' && v.selector && Array.isArray(v.unreachable))
      return { selector: v.selector, unreachable: v.unreachable };
  } catch {
    // A batch written by other code: show its selector text as is.
  }
  return { selector: { text }, unreachable: [] };
}
