import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import type { McuAdmission } from '../mcus/model.ts';
import type { BatchRecord, DeviceRecord, PostureEvent, Release, RoundRecord } from '../model.ts';
import type { ReleaseManifestRecord } from '../releases/model.ts';
import type { Rollout } from '../rollouts/model.ts';
import { allowlistEntry } from './allowlist.ts';
import { HeldWrites } from './held-writes.ts';
import type { McuAdmissionRow } from './mcu-admission-rows.ts';
import { migrate, SCHEMA_VERSION } from './migrations.ts';
import type { ReleaseManifestRow } from './release-manifest-rows.ts';
import type { RolloutRow, SwarmFloor, SwarmFloorRow } from './rollout-rows.ts';
import type { BatchRow, DeviceRow, PostureEventRow, ReleaseRow, RoundRow } from './rows.ts';
import { backupDatabase, StoreFileError } from './sqlite-file.ts';
import { type Store, type StoreHealth, type StoreStats, StoreWriteError } from './store.ts';
import {
  ALLOWLIST,
  BATCHES,
  DEVICES,
  MCU_ADMISSIONS,
  POSTURE_EVENTS,
  RELEASE_MANIFESTS,
  RELEASES,
  ROLLOUTS,
  ROUNDS,
  SWARM_FLOORS,
  type Table,
} from './tables.ts';
import { writeKey } from './write-keys.ts';
import { type QueueEvent, type Write, WriteQueue } from './write-queue.ts';
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
//
// When the database cannot write (SQLITE_FULL, a read-only file system), the queue keeps the
// writes and retries (write-queue.ts); lookups by key, the allowlist and the releases still
// include queued writes, while the history lists (recent rounds, posture events) answer from
// what is committed: late, never wrong. flush() then refuses at once, so that whoever needs a
// write to be durable before acting (an enrolment) learns it cannot be.

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
   * Hears of writes the database refused (a round for an unknown device, say); the rest of their
   * batch is committed. Default: a process warning. Commits that fail as a whole (the database
   * cannot write) go to onHealthChange instead: those writes are kept and retried.
   */
  readonly onWriteError?: (err: Error) => void;
  /**
   * Writes kept while the database cannot write; past it history is dropped, routine rounds first
   * (write-queue.ts). Default 20,000: about 100 MB of queued rounds with their evidence
   * (measured: 4.8 KB each, the record and its row).
   */
  readonly maxQueued?: number;
  /** Longest pause between retries while commits fail, ms (default 5000). */
  readonly maxRetryMs?: number;
  /** Hears when commits start failing, when history starts being dropped, and when commits succeed again. */
  readonly onHealthChange?: (event: QueueEvent, health: StoreHealth) => void;
  /** The clock of the health's times (default Date.now). */
  readonly now?: () => number;
}

/** The store cannot write now; what it was asked to make durable is still queued. */
export class StoreUnavailableError extends Error {
  constructor(
    file: string,
    readonly reason: string,
  ) {
    super(`posture store ${file} cannot write (${reason}); writes are queued and retried`);
    this.name = 'StoreUnavailableError';
  }
}

/** What `backup` wrote. */
export interface BackupInfo {
  readonly file: string;
  readonly bytes: number;
  readonly schemaVersion: number;
  /** Writes still queued (not in the backup) because the store could not commit them. */
  readonly uncommitted: number;
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
/** Routine rounds are the first history dropped when the queue is over its bound. */
const routineShed = (r: RoundRecord): 1 | 2 => (r.activate ? 2 : 1);

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

    insertReleaseManifest: db.prepare<[ReleaseManifestRow]>(
      insertSql(RELEASE_MANIFESTS.name, RELEASE_MANIFESTS.columns),
    ),
    releaseManifests: db.prepare<[], ReleaseManifestRow>(
      'SELECT * FROM release_manifests ORDER BY name, seq',
    ),
    releaseManifestsOf: db.prepare<[string], ReleaseManifestRow>(
      'SELECT * FROM release_manifests WHERE name = ? ORDER BY seq',
    ),
    releaseManifest: db.prepare<[string, number], ReleaseManifestRow>(
      'SELECT * FROM release_manifests WHERE name = ? AND seq = ?',
    ),

    admitMcu: upsert(MCU_ADMISSIONS),
    revokeMcu: db.prepare<[string]>('DELETE FROM mcu_admissions WHERE identity = ?'),
    mcuAdmissions: db.prepare<[], McuAdmissionRow>('SELECT * FROM mcu_admissions ORDER BY identity'),

    upsertBatch: upsert(BATCHES),
    batch: db.prepare<[string], BatchRow>('SELECT * FROM batches WHERE id = ?'),

    upsertRollout: upsert(ROLLOUTS),
    rollout: db.prepare<[string], RolloutRow>('SELECT * FROM rollouts WHERE id = ?'),
    rollouts: db.prepare<[], RolloutRow>('SELECT * FROM rollouts ORDER BY updated_at DESC, rowid DESC'),
    upsertSwarmFloor: upsert(SWARM_FLOORS),
    swarmFloors: db.prepare<[string], SwarmFloorRow>(
      'SELECT * FROM swarm_floors WHERE swarm = ? ORDER BY name',
    ),
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
  private pendingFlush: Promise<void> | undefined;

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
      {
        flushDelayMs: options.flushDelayMs ?? 20,
        maxBatch: options.maxBatch ?? 1000,
        maxQueued: options.maxQueued ?? 20_000,
        maxRetryMs: options.maxRetryMs ?? 5000,
        now: options.now ?? Date.now,
      },
      (event) => options.onHealthChange?.(event, this.health()),
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

  private write(
    table: string,
    what: string,
    run: () => void,
    key?: string,
    record?: unknown,
    shed?: 1 | 2,
  ): void {
    if (this.closed) throw new Error(`posture store ${this.file} is closed: cannot ${what}`);
    this.queue.push(
      { table, what, run, ...(record !== undefined && { record }), ...(shed !== undefined && { shed }) },
      key,
    );
  }

  /** The record a queued (or held) upsert with this key will write, read without a commit. */
  private queuedRecord<T>(key: string): T | undefined {
    if (this.closed) throw new Error(`posture store ${this.file} is closed`);
    return (this.held.peek(key) ?? this.queue.queued(key))?.record as T | undefined;
  }

  /**
   * A record by its key: the queued one if there is one, else the row. Every write is a keyed
   * upsert, so with nothing queued for the key the row is current, and a lookup must not force a
   * commit (that would undo the batching in the middle of a round).
   */
  private keyed<R, Row>(key: string, row: () => Row | undefined, table: Table<R, Row>): R | undefined {
    const queued = this.queuedRecord<R>(key);
    if (queued) return queued;
    this.open();
    const found = row();
    return found && table.fromRow(found);
  }

  /**
   * Make queued writes to these tables visible before reading them. While commits fail, reads
   * answer from what is committed instead of retrying a commit per read.
   */
  private readable(...tables: string[]): void {
    this.open();
    if (tables.includes('rounds')) this.held.releaseAll();
    if (this.queue.pendingFor(...tables) && !this.queue.failing) this.queue.flush();
  }

  private open(): void {
    if (this.closed) throw new Error(`posture store ${this.file} is closed`);
  }

  stats(): StoreStats {
    return {
      ...this.counters,
      coalesced: this.queue.coalesced + this.held.superseded,
      queued: this.queue.length + this.held.size,
      dropped: this.queue.dropped,
    };
  }

  health(): StoreHealth {
    return {
      writable: !this.queue.failing,
      queued: this.queue.length + this.held.size,
      dropped: this.queue.dropped,
      failingSince: this.queue.failingSince ?? null,
      lastError: this.queue.lastError ?? null,
    };
  }

  // Writer: queued, synchronous.

  saveDevice(d: DeviceRecord): void {
    const row = DEVICES.toRow(d);
    this.write(
      'devices',
      `saveDevice ${d.id}`,
      () => this.sql.upsertDevice.run(row),
      writeKey.device(d.id),
      d,
    );
  }

  saveRound(r: RoundRecord): void {
    const key = writeKey.round(r.id);
    if (r.state === 'pending') {
      if (this.closed) throw new Error(`posture store ${this.file} is closed: cannot saveRound ${r.id}`);
      // Converted to a row only if it is ever written (a round's records are never mutated).
      const write = {
        table: 'rounds',
        what: `saveRound ${r.id}`,
        run: () => this.sql.upsertRound.run(ROUNDS.toRow(r)),
        record: r,
        shed: routineShed(r),
      };
      // In the store well before its deadline, so that a restart late in the round keeps it.
      this.held.hold(key, write, (r.deadlineAt - r.issuedAt) / 4);
      return;
    }
    this.held.take(key);
    const row = ROUNDS.toRow(r);
    this.write('rounds', `saveRound ${r.id}`, () => this.sql.upsertRound.run(row), key, r, routineShed(r));
  }

  addPostureEvent(e: PostureEvent): void {
    const row = POSTURE_EVENTS.toRow(e);
    const what = `addPostureEvent ${e.deviceId}`;
    this.write('posture_events', what, () => this.sql.insertPostureEvent.run(row), undefined, undefined, 2);
  }

  saveBatch(b: BatchRecord): void {
    const row = BATCHES.toRow(b);
    this.write('batches', `saveBatch ${b.id}`, () => this.sql.upsertBatch.run(row), writeKey.batch(b.id), b);
  }

  admit(ekHashOrDeviceId: string, note?: string): void {
    const entry = allowlistEntry(ekHashOrDeviceId);
    const row = { entry, note: note ?? null, admitted_at: Date.now() };
    this.allowlistWrite({ entry, admitted: true }, () => this.sql.admit.run(row));
  }

  revoke(ekHashOrDeviceId: string): void {
    const entry = allowlistEntry(ekHashOrDeviceId);
    this.allowlistWrite({ entry, admitted: false }, () => this.sql.revoke.run(entry));
  }

  private allowlistWrite(change: AllowlistChange, run: () => void): void {
    const what = `${change.admitted ? 'admit' : 'revoke'} ${change.entry}`;
    this.write('allowlist', what, run, writeKey.allowlist(change.entry), change);
  }

  addRelease(r: Release): void {
    const row = RELEASES.toRow(r);
    const what = `addRelease ${r.name} ${r.version}`;
    const change: ReleaseChange = { name: r.name, version: r.version, release: r };
    this.write(
      'releases',
      what,
      () => this.sql.upsertRelease.run(row),
      writeKey.release(r.name, r.version),
      change,
    );
  }

  removeRelease(name: string, version: string): void {
    const what = `removeRelease ${name} ${version}`;
    const change: ReleaseChange = { name, version, release: undefined };
    const run = () => this.sql.removeRelease.run(name, version);
    this.write('releases', what, run, writeKey.release(name, version), change);
  }

  addReleaseManifest(r: ReleaseManifestRecord): void {
    const row = RELEASE_MANIFESTS.toRow(r);
    const what = `addReleaseManifest ${r.name} seq ${r.seq}`;
    this.write('release_manifests', what, () => this.sql.insertReleaseManifest.run(row));
  }

  admitMcu(a: McuAdmission): void {
    const row = MCU_ADMISSIONS.toRow(a);
    const what = `admitMcu ${a.identity}`;
    this.write('mcu_admissions', what, () => this.sql.admitMcu.run(row), writeKey.mcu(a.identity));
  }

  revokeMcu(identity: string): void {
    const what = `revokeMcu ${identity}`;
    this.write('mcu_admissions', what, () => this.sql.revokeMcu.run(identity), writeKey.mcu(identity));
  }

  saveRollout(r: Rollout): void {
    const row = ROLLOUTS.toRow(r);
    const what = `saveRollout ${r.spec.id}`;
    this.write('rollouts', what, () => this.sql.upsertRollout.run(row), writeKey.rollout(r.spec.id), r);
  }

  saveSwarmFloor(f: SwarmFloor): void {
    const row = SWARM_FLOORS.toRow(f);
    const what = `saveSwarmFloor ${f.swarm} ${f.name}`;
    const key = writeKey.swarmFloor(f.swarm, f.name);
    this.write('swarm_floors', what, () => this.sql.upsertSwarmFloor.run(row), key);
  }

  // Queries: SQLite answers at once; each sees the writes made before it.

  async devices(): Promise<DeviceRecord[]> {
    this.readable('devices');
    return this.sql.allDevices.all().map(DEVICES.fromRow);
  }

  async device(id: string): Promise<DeviceRecord | undefined> {
    return this.keyed(writeKey.device(id), () => this.sql.device.get(id), DEVICES);
  }

  async round(id: string): Promise<RoundRecord | undefined> {
    return this.keyed(writeKey.round(id), () => this.sql.round.get(id), ROUNDS);
  }

  async rounds(ids: readonly string[]): Promise<RoundRecord[]> {
    // Keyed like round(id): each id from the queue when it is queued, the rest in one query.
    this.open();
    const found: RoundRecord[] = [];
    const rest: string[] = [];
    for (const id of ids) {
      const queued = this.queuedRecord<RoundRecord>(writeKey.round(id));
      if (queued) found.push(queued);
      else rest.push(id);
    }
    if (rest.length > 0) found.push(...this.sql.rounds.all(JSON.stringify(rest)).map(ROUNDS.fromRow));
    return found;
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

  // The allowlist and the releases make the runtime policy: a revocation while the store cannot
  // write must still apply, so these reads lay what is queued over what is committed.

  async admitted(): Promise<string[]> {
    this.readable('allowlist');
    const entries = new Set(this.sql.admitted.all().map((r) => r.entry));
    for (const w of this.queue.queuedFor('allowlist')) {
      const change = w.record as AllowlistChange;
      if (change.admitted) entries.add(change.entry);
      else entries.delete(change.entry);
    }
    return [...entries].sort();
  }

  async releases(): Promise<Release[]> {
    this.readable('releases');
    const releases = this.sql.releases.all().map(RELEASES.fromRow);
    const queued = this.queue.queuedFor('releases').map((w) => w.record as ReleaseChange);
    if (queued.length === 0) return releases;
    const key = (r: { name: string; version: string }) => writeKey.release(r.name, r.version);
    const changed = new Set(queued.map(key));
    return [
      ...releases.filter((r) => !changed.has(key(r))),
      ...queued.flatMap((c) => (c.release ? [c.release] : [])),
    ].sort(byNameTimeVersion);
  }

  async releaseManifests(name?: string): Promise<ReleaseManifestRecord[]> {
    this.readable('release_manifests');
    const rows = name === undefined ? this.sql.releaseManifests.all() : this.sql.releaseManifestsOf.all(name);
    return rows.map(RELEASE_MANIFESTS.fromRow);
  }

  async releaseManifest(name: string, seq: number): Promise<ReleaseManifestRecord | undefined> {
    this.readable('release_manifests');
    const row = this.sql.releaseManifest.get(name, seq);
    return row && RELEASE_MANIFESTS.fromRow(row);
  }

  async batch(id: string): Promise<BatchRecord | undefined> {
    return this.keyed(writeKey.batch(id), () => this.sql.batch.get(id), BATCHES);
  }

  async mcuAdmissions(): Promise<McuAdmission[]> {
    this.readable('mcu_admissions');
    return this.sql.mcuAdmissions.all().map(MCU_ADMISSIONS.fromRow);
  }

  async rollout(id: string): Promise<Rollout | undefined> {
    return this.keyed(writeKey.rollout(id), () => this.sql.rollout.get(id), ROLLOUTS);
  }

  async rollouts(): Promise<Rollout[]> {
    this.readable('rollouts');
    return this.sql.rollouts.all().map(ROLLOUTS.fromRow);
  }

  async swarmFloors(swarm: string): Promise<SwarmFloor[]> {
    this.readable('swarm_floors');
    return this.sql.swarmFloors.all(swarm).map(SWARM_FLOORS.fromRow);
  }

  async pruneRounds(before: number, limit: number): Promise<number> {
    // A delete needs the disk too: nothing is pruned until commits succeed again.
    if (this.queue.failing) return 0;
    // Queued writes first, so that a queued update cannot bring back a round deleted here.
    this.readable('rounds');
    return this.sql.pruneRounds.run(before, limit).changes;
  }

  /**
   * Commits what is queued. Callers within one turn of the event loop share one commit (a storm
   * of enrolments stays a handful of transactions). While commits fail it rejects at once with
   * StoreUnavailableError: the queue's own retries find out when the disk is back.
   */
  flush(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.queue.failing)
      return Promise.reject(new StoreUnavailableError(this.file, this.queue.lastError?.message ?? 'unknown'));
    this.pendingFlush ??= new Promise<void>((resolve, reject) => {
      setImmediate(() => {
        this.pendingFlush = undefined;
        try {
          this.flushNow();
          resolve();
        } catch (err) {
          reject(new StoreUnavailableError(this.file, err instanceof Error ? err.message : String(err)));
        }
      });
    });
    return this.pendingFlush;
  }

  /** The synchronous commit SQLite allows (tests and the shutdown path). */
  flushNow(): void {
    if (this.closed) return;
    this.held.releaseAll();
    this.queue.flush();
  }

  /**
   * A consistent copy of the database in `file` (sqlite-file.ts): the gateway keeps writing
   * meanwhile. Queued writes are committed first when the store can write; while it cannot, the
   * copy holds what is committed and `uncommitted` says how much is not. Refuses an existing file.
   */
  async backup(file: string): Promise<BackupInfo> {
    this.open();
    if (resolve(file) === resolve(this.file)) throw new StoreFileError(`${file} is the live database itself`);
    if (!this.queue.failing) this.flushNow();
    await backupDatabase(this.db, file);
    return {
      file,
      bytes: statSync(file).size,
      schemaVersion: SCHEMA_VERSION,
      uncommitted: this.queue.length,
    };
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

/** The order of the releases query (SQLite compares text by bytes, as `<` does). */
function byNameTimeVersion(a: Release, b: Release): number {
  const text = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);
  return text(a.name, b.name) || a.addedAt - b.addedAt || text(a.version, b.version);
}

/** A queued allowlist write, as reads lay it over the committed entries. */
interface AllowlistChange {
  readonly entry: string;
  readonly admitted: boolean;
}

/** A queued release write: the release registered, or undefined when it is removed. */
interface ReleaseChange {
  readonly name: string;
  readonly version: string;
  readonly release: Release | undefined;
}
