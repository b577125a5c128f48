import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { BatchRecord, DeviceRecord, PostureEvent, Release, RoundRecord } from '../model.ts';
import { allowlistEntry } from './allowlist.ts';
import { HeldWrites } from './held-writes.ts';
import { migrate } from './migrations.ts';
import type { BatchRow, DeviceRow, PostureEventRow, ReleaseRow, RoundRow } from './rows.ts';
import type { Store } from './store.ts';
import { ALLOWLIST, BATCHES, DEVICES, POSTURE_EVENTS, RELEASES, ROUNDS, type Table } from './tables.ts';
import { type Write, WriteQueue } from './write-queue.ts';

// The embedded posture store: SQLite through better-sqlite3 (v12; v13 crashes Node 20).
//
// Durability: WAL with synchronous=NORMAL. A committed transaction survives the death of the
// process (SIGKILL included); after an OS crash or power loss the last few commits may be rolled
// back, never half-applied. `synchronous: 'FULL'` closes that window at the cost of an fsync per
// commit. Writes are queued (write-queue.ts) and committed together, one transaction per flush.
//
// Reads see every earlier write. A lookup by key (device(id), round(id)) whose record is still
// queued returns the queued record itself; any other read flushes first when a write to a table
// it reads is still queued. So the verifier looking up a round per evidence, or admitting a storm
// of reconnecting devices, does not turn a batch back into a commit per device. Hot paths should
// still keep their own state and mostly write; loadDevices() at start is the intended pattern.

export interface SqliteStoreOptions {
  /** Longest a write waits for its commit, in ms (default 20). */
  readonly flushDelayMs?: number;
  /** Commit as soon as this many writes are queued (default 1000). */
  readonly maxBatch?: number;
  /**
   * How long a pending round's record waits for its settled record to replace it before it is
   * written after all (held-writes.ts), in ms, and never more than a quarter of the round's
   * deadline; 0 writes it like any other. Default 3,000.
   */
  readonly pendingRoundHoldMs?: number;
  /** 'NORMAL' (default) survives process crashes; 'FULL' also OS crashes, slower. */
  readonly synchronous?: 'NORMAL' | 'FULL';
  /**
   * Hears of writes the database refused (a round for an unknown device, say) and of background
   * commits that failed as a whole. Default: a process warning. Never throws into the caller of
   * a later, unrelated operation.
   */
  readonly onWriteError?: (err: Error) => void;
}

export interface StoreStats {
  /** Transactions committed by flushes. */
  readonly commits: number;
  /** Writes committed. */
  readonly writes: number;
  /** Writes replaced in the queue by a newer save of the same record before they were committed. */
  readonly coalesced: number;
  /** Writes the database refused; each was reported through onWriteError. */
  readonly failedWrites: number;
  /** Writes waiting for a commit. */
  readonly queued: number;
}

/** Writes of one flush that the database refused; the flush committed all the others. */
export class StoreWriteError extends Error {
  constructor(readonly failures: readonly { readonly what: string; readonly error: string }[]) {
    super(
      `posture store refused ${failures.length} write(s): ` +
        failures
          .slice(0, 5)
          .map((f) => `${f.what}: ${f.error}`)
          .join('; ') +
        (failures.length > 5 ? '; …' : ''),
    );
    this.name = 'StoreWriteError';
  }
}

function insertSql(table: string, columns: readonly string[]): string {
  return `INSERT INTO ${table} (${columns.join(', ')}) VALUES (${columns.map((c) => `@${c}`).join(', ')})`;
}

/** An insert that replaces every column of an existing row with the same key. */
function upsertSql(table: string, columns: readonly string[], key: readonly string[]): string {
  const set = columns.filter((c) => !key.includes(c)).map((c) => `${c} = excluded.${c}`);
  return `${insertSql(table, columns)} ON CONFLICT (${key.join(', ')}) DO UPDATE SET ${set.join(', ')}`;
}

/** A refusal of one statement (constraint, type) as opposed to a failure of the database. */
function isRefusal(err: unknown): boolean {
  if (err instanceof Database.SqliteError) return err.code.startsWith('SQLITE_CONSTRAINT');
  return err instanceof TypeError || err instanceof RangeError;
}

function prepareStatements(db: Database.Database) {
  const upsert = <R, Row>(t: Table<R, Row>) => db.prepare<[Row]>(upsertSql(t.name, t.columns, t.key));
  return {
    upsertDevice: upsert(DEVICES),
    allDevices: db.prepare<[], DeviceRow>('SELECT * FROM devices ORDER BY id'),
    device: db.prepare<[string], DeviceRow>('SELECT * FROM devices WHERE id = ?'),

    upsertRound: upsert(ROUNDS),
    round: db.prepare<[string], RoundRow>('SELECT * FROM rounds WHERE id = ?'),
    rounds: db.prepare<[string], RoundRow>(
      'SELECT * FROM rounds WHERE id IN (SELECT value FROM json_each(?))',
    ),
    pendingRounds: db.prepare<[], RoundRow>(
      "SELECT * FROM rounds WHERE state = 'pending' ORDER BY deadline_at, rowid",
    ),
    recentRounds: db.prepare<[string, number], RoundRow>(
      'SELECT * FROM rounds WHERE device_id = ? ORDER BY issued_at DESC, rowid DESC LIMIT ?',
    ),
    // One index seek per device (rounds_by_device), not one query per device.
    latestRounds: db.prepare<[], RoundRow>(
      `SELECT * FROM rounds WHERE rowid IN (
         SELECT (SELECT r.rowid FROM rounds r WHERE r.device_id = d.id ORDER BY r.issued_at DESC, r.rowid DESC LIMIT 1)
         FROM devices d)`,
    ),
    // Through the partial index of settled rounds by time: a bounded delete never scans the table.
    pruneRounds: db.prepare<[number, number]>(
      `DELETE FROM rounds WHERE rowid IN (
         SELECT rowid FROM rounds WHERE state <> 'pending' AND issued_at < ? ORDER BY issued_at LIMIT ?)`,
    ),

    insertPostureEvent: db.prepare<[PostureEventRow]>(insertSql(POSTURE_EVENTS.name, POSTURE_EVENTS.columns)),
    postureEvents: db.prepare<[string, number], PostureEventRow>(
      'SELECT * FROM posture_events WHERE device_id = ? ORDER BY seq DESC LIMIT ?',
    ),

    admit: upsert(ALLOWLIST),
    revoke: db.prepare<[string]>('DELETE FROM allowlist WHERE entry = ?'),
    admitted: db.prepare<[], { entry: string }>('SELECT entry FROM allowlist ORDER BY entry'),

    upsertRelease: upsert(RELEASES),
    removeRelease: db.prepare<[string, string]>('DELETE FROM releases WHERE name = ? AND version = ?'),
    releases: db.prepare<[], ReleaseRow>('SELECT * FROM releases ORDER BY name, added_at, version'),

    upsertBatch: upsert(BATCHES),
    batch: db.prepare<[string], BatchRow>('SELECT * FROM batches WHERE id = ?'),
  };
}

export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly sql: ReturnType<typeof prepareStatements>;
  private readonly queue: WriteQueue;
  private readonly held: HeldWrites<Write>;
  private readonly onWriteError: (err: Error) => void;
  private closed = false;
  private counters = { commits: 0, writes: 0, failedWrites: 0 };

  /** Open (creating when absent) and migrate the store in `file`; ':memory:' for a throwaway one. */
  readonly describe: string;

  constructor(
    readonly file: string,
    options: SqliteStoreOptions = {},
  ) {
    this.describe = `sqlite ${file}`;
    if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
    this.db = new Database(file);
    try {
      this.db.pragma('journal_mode = WAL');
      this.db.pragma(`synchronous = ${options.synchronous ?? 'NORMAL'}`);
      this.db.pragma('foreign_keys = ON');
      // An operator's sqlite3 shell may hold a read lock for a moment; wait rather than fail.
      this.db.pragma('busy_timeout = 5000');
      migrate(this.db, file);
      this.sql = prepareStatements(this.db);
    } catch (err) {
      this.db.close();
      throw err;
    }
    this.onWriteError = options.onWriteError ?? ((err) => process.emitWarning(err));
    const commit = this.db.transaction((writes: readonly Write[]) => this.apply(writes));
    this.queue = new WriteQueue(
      (writes) => {
        const refused = commit.immediate(writes);
        this.counters.commits++;
        this.counters.writes += writes.length - refused.length;
        if (refused.length > 0) {
          this.counters.failedWrites += refused.length;
          this.onWriteError(new StoreWriteError(refused));
        }
      },
      { flushDelayMs: options.flushDelayMs ?? 20, maxBatch: options.maxBatch ?? 1000 },
      (err) => this.onWriteError(err instanceof Error ? err : new Error(String(err))),
    );
    this.held = new HeldWrites(options.pendingRoundHoldMs ?? 3000, (w, key) => this.queue.push(w, key));
  }

  /**
   * Runs inside the flush's transaction. A statement the database refuses is backed out alone
   * (SQLite aborts the statement, not the transaction) and reported, so one bad record does not
   * cost the batch; any other failure aborts the whole transaction.
   */
  private apply(writes: readonly Write[]): { what: string; error: string }[] {
    const refused: { what: string; error: string }[] = [];
    for (const w of writes) {
      try {
        w.run();
      } catch (err) {
        if (!isRefusal(err)) throw err;
        refused.push({ what: w.what, error: err instanceof Error ? err.message : String(err) });
      }
    }
    return refused;
  }

  private write(table: string, what: string, run: () => void, key?: string, record?: unknown): void {
    if (this.closed) throw new Error(`posture store ${this.file} is closed: cannot ${what}`);
    this.queue.push(record === undefined ? { table, what, run } : { table, what, run, record }, key);
  }

  /** The record a queued (or held) upsert with this key will write, read without a commit. */
  private queuedRecord<T>(key: string): T | undefined {
    if (this.closed) throw new Error(`posture store ${this.file} is closed`);
    return (this.held.peek(key) ?? this.queue.queued(key))?.record as T | undefined;
  }

  /** Make queued writes to these tables visible before reading them. */
  private readable(...tables: string[]): void {
    this.open();
    if (tables.includes('rounds')) this.held.releaseAll();
    if (this.queue.pendingFor(...tables)) this.queue.flush();
  }

  private open(): void {
    if (this.closed) throw new Error(`posture store ${this.file} is closed`);
  }

  stats(): StoreStats {
    return {
      ...this.counters,
      coalesced: this.queue.coalesced + this.held.superseded,
      queued: this.queue.length + this.held.size,
    };
  }

  // Writer: queued, synchronous.

  saveDevice(d: DeviceRecord): void {
    const row = DEVICES.toRow(d);
    this.write('devices', `saveDevice ${d.id}`, () => this.sql.upsertDevice.run(row), deviceKey(d.id), d);
  }

  saveRound(r: RoundRecord): void {
    const key = roundKey(r.id);
    if (r.state === 'pending') {
      if (this.closed) throw new Error(`posture store ${this.file} is closed: cannot saveRound ${r.id}`);
      // Converted to a row only if it is ever written (a round's records are never mutated).
      const write = {
        table: 'rounds',
        what: `saveRound ${r.id}`,
        run: () => this.sql.upsertRound.run(ROUNDS.toRow(r)),
        record: r,
      };
      // In the store well before its deadline, so that a restart late in the round keeps it.
      this.held.hold(key, write, (r.deadlineAt - r.issuedAt) / 4);
      return;
    }
    this.held.take(key);
    const row = ROUNDS.toRow(r);
    this.write('rounds', `saveRound ${r.id}`, () => this.sql.upsertRound.run(row), key, r);
  }

  addPostureEvent(e: PostureEvent): void {
    const row = POSTURE_EVENTS.toRow(e);
    this.write('posture_events', `addPostureEvent ${e.deviceId}`, () => this.sql.insertPostureEvent.run(row));
  }

  saveBatch(b: BatchRecord): void {
    const row = BATCHES.toRow(b);
    this.write('batches', `saveBatch ${b.id}`, () => this.sql.upsertBatch.run(row), `batch ${b.id}`);
  }

  admit(ekHashOrDeviceId: string, note?: string): void {
    const entry = allowlistEntry(ekHashOrDeviceId);
    const row = { entry, note: note ?? null, admitted_at: Date.now() };
    this.write('allowlist', `admit ${entry}`, () => this.sql.admit.run(row), `allowlist ${entry}`);
  }

  revoke(ekHashOrDeviceId: string): void {
    const entry = allowlistEntry(ekHashOrDeviceId);
    this.write('allowlist', `revoke ${entry}`, () => this.sql.revoke.run(entry), `allowlist ${entry}`);
  }

  addRelease(r: Release): void {
    const row = RELEASES.toRow(r);
    const what = `addRelease ${r.name} ${r.version}`;
    this.write('releases', what, () => this.sql.upsertRelease.run(row), releaseKey(r.name, r.version));
  }

  removeRelease(name: string, version: string): void {
    const what = `removeRelease ${name} ${version}`;
    this.write('releases', what, () => this.sql.removeRelease.run(name, version), releaseKey(name, version));
  }

  // Queries: SQLite answers at once; each sees the writes made before it.

  async devices(): Promise<DeviceRecord[]> {
    this.readable('devices');
    return this.sql.allDevices.all().map(DEVICES.fromRow);
  }

  async device(id: string): Promise<DeviceRecord | undefined> {
    const queued = this.queuedRecord<DeviceRecord>(deviceKey(id));
    if (queued) return queued;
    // Every write is a keyed upsert: with nothing queued for this key, the row is current, and
    // a lookup must not force a commit (that would undo the batching in the middle of a round).
    this.open();
    const row = this.sql.device.get(id);
    return row && DEVICES.fromRow(row);
  }

  async round(id: string): Promise<RoundRecord | undefined> {
    const queued = this.queuedRecord<RoundRecord>(roundKey(id));
    if (queued) return queued;
    this.open();
    const row = this.sql.round.get(id);
    return row && ROUNDS.fromRow(row);
  }

  async rounds(ids: readonly string[]): Promise<RoundRecord[]> {
    this.readable('rounds');
    return this.sql.rounds.all(JSON.stringify(ids)).map(ROUNDS.fromRow);
  }

  async pendingRounds(): Promise<RoundRecord[]> {
    this.readable('rounds');
    return this.sql.pendingRounds.all().map(ROUNDS.fromRow);
  }

  async recentRounds(deviceId: string, limit: number): Promise<RoundRecord[]> {
    this.readable('rounds');
    return this.sql.recentRounds.all(deviceId, limit).map(ROUNDS.fromRow);
  }

  async latestRounds(): Promise<Map<string, RoundRecord>> {
    this.readable('rounds', 'devices');
    return new Map(
      this.sql.latestRounds.all().map((row) => {
        const r = ROUNDS.fromRow(row);
        return [r.deviceId, r];
      }),
    );
  }

  async postureEvents(deviceId: string, limit: number): Promise<PostureEvent[]> {
    this.readable('posture_events');
    return this.sql.postureEvents.all(deviceId, limit).map(POSTURE_EVENTS.fromRow);
  }

  async admitted(): Promise<string[]> {
    this.readable('allowlist');
    return this.sql.admitted.all().map((r) => r.entry);
  }

  async releases(): Promise<Release[]> {
    this.readable('releases');
    return this.sql.releases.all().map(RELEASES.fromRow);
  }

  async batch(id: string): Promise<BatchRecord | undefined> {
    this.readable('batches');
    const row = this.sql.batch.get(id);
    return row && BATCHES.fromRow(row);
  }

  async pruneRounds(before: number, limit: number): Promise<number> {
    // Queued writes first, so that a queued update cannot bring back a round deleted here.
    this.readable('rounds');
    return this.sql.pruneRounds.run(before, limit).changes;
  }

  async flush(): Promise<void> {
    this.flushNow();
  }

  /** The synchronous commit SQLite allows (tests and the shutdown path). */
  flushNow(): void {
    if (this.closed) return;
    this.held.releaseAll();
    this.queue.flush();
  }

  async integrityCheck(): Promise<string> {
    this.flushNow();
    const rows = this.db.pragma('integrity_check') as { integrity_check: string }[];
    return rows.map((r) => r.integrity_check).join('\n');
  }

  async close(): Promise<void> {
    this.closeNow();
  }

  closeNow(): void {
    if (this.closed) return;
    try {
      this.held.releaseAll();
      this.queue.flush();
    } finally {
      this.closed = true;
      this.held.dispose();
      this.queue.dispose();
      this.db.close();
    }
  }
}

// Queue keys: saves with the same key coalesce, and a keyed lookup reads the queued record.
function deviceKey(id: string): string {
  return `device ${id}`;
}
function roundKey(id: string): string {
  return `round ${id}`;
}
function releaseKey(name: string, version: string): string {
  return `release ${JSON.stringify([name, version])}`;
}
