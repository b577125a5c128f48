import pg from 'pg';
import type { McuAdmission } from '../mcus/model.ts';
import type { BatchRecord, DeviceRecord, PostureEvent, Release, RoundRecord } from '../model.ts';
import type { ArtifactStore, StoredArtifact } from '../releases/artifact-files.ts';
import type { ReleaseManifestRecord } from '../releases/model.ts';
import type { Rollout } from '../rollouts/model.ts';
import type { OwnedRollout, SharedRollouts } from '../rollouts/peers.ts';
import { allowlistEntry } from './allowlist.ts';
import { PgArtifacts } from './postgres-artifacts.ts';
import { migratePostgres, PG_SCHEMA_VERSION } from './postgres-migrations.ts';
import { PgRollouts } from './postgres-rollouts.ts';
import {
  insertRows,
  rowValues,
  type Statement,
  selectFrom,
  upsertRows,
  upsertTail,
} from './postgres-statements.ts';
import type { SwarmFloor } from './rollout-rows.ts';
import type { BatchRow, DeviceRow, PostureEventRow, ReleaseRow, RoundRow } from './rows.ts';
import { type Store, type StoreHealth, type StoreStats, StoreWriteError } from './store.ts';
import {
  ALLOWLIST,
  type AllowlistRow,
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
import { type Write, WriteQueue } from './write-queue.ts';

// The posture store on PostgreSQL (`pg` 8): the store several gateways share (docs/scale.md).
//
// The writer is the same as SQLite's to its callers: synchronous and write-behind, through the
// same write queue (write-queue.ts), which coalesces saves of one record and hands batches over.
// A handed-over batch is one transaction of multi-row statements, one per table, committed in
// the order batches were handed over; a batch whose commit fails (the server is away) is retried
// with backoff and nothing queued behind it overtakes it. A query awaits the commit of every
// queued write to the tables it reads, then asks the server.
//
// What several gateways add, all inside this engine:
// - rounds.owner: the gateway that issued (or adopted) a round; pendingRounds() returns only the
//   rounds this gateway owns, so a restarted gateway re-arms its own deadlines and no other's.
// - devices.version: each device write names the version this gateway last read or wrote, and
//   the server refuses it when another gateway wrote since (a conflict, reported through
//   onConflict with the posture events that depended on it, which are not stored either): a
//   gateway with an old copy of a record can never overwrite a newer one.
// - requested rounds: rounds asked of whichever gateway holds a device, and the gateways'
//   heartbeats that tell which gateways are alive (methods of SharedStore, below).

export interface PostgresStoreOptions {
  /** `postgres://user:password@host:port/database` */
  readonly url: string;
  /** This gateway's id: the owner of the rounds it writes. */
  readonly gatewayId: string;
  /** Longest a write waits for its commit, in ms (default 20). */
  readonly flushDelayMs?: number;
  /** Hand a batch over as soon as this many writes are queued (default 1000). */
  readonly maxBatch?: number;
  /** Connections to the server (default 6): one commits, the others serve queries. */
  readonly poolSize?: number;
  /** Writes the server refused (reported, the rest committed) and commits that failed (retried). */
  readonly onWriteError?: (err: Error) => void;
  /** Device writes refused because another gateway wrote the device since this one read it. */
  readonly onConflict?: (conflicts: readonly DeviceConflict[]) => void;
  /** After each commit: what it wrote (other gateways hear of it from here). */
  readonly onCommit?: (commit: CommitNotice) => void;
}

export interface DeviceConflict {
  readonly id: string;
  /** The record this gateway wrote, when a device write was refused (not only its events). */
  readonly refused?: DeviceRecord;
  /** The labels of the version that write was based on (the write changed them if they differ). */
  readonly baseLabels?: Readonly<Record<string, string>>;
  /** Posture events of this gateway for the device, not stored because they followed the refused write. */
  readonly events: readonly PostureEvent[];
}

export interface CommitNotice {
  /** Devices whose rows this commit wrote. */
  readonly devices: readonly string[];
  /** Tables written. */
  readonly tables: ReadonlySet<string>;
}

/** A round as stored, with whether it is still only requested (asked of the fleet, not issued). */
export type StoredRound = RoundRecord & { readonly requested: boolean };

/** What the scale-out layer uses beyond Store (gateway/scale). */
export interface SharedStore extends Store, SharedRollouts, ArtifactStore {
  readonly gatewayId: string;
  /** False while commits fail (the server is unreachable): writes wait and are retried. */
  readonly healthy: boolean;
  /**
   * Resolves once every write made before the call is committed, at the queue's own pace (unlike
   * flush, it hands nothing over early: the batching stays what it would be).
   */
  caughtUp(): Promise<void>;
  /** Reads these devices and hands over, synchronously, those with no write of this gateway pending. */
  reloadDevices(ids: readonly string[] | 'all', accept: (records: DeviceRecord[]) => void): Promise<void>;
  /** The gateway that wrote this device's row last, as far as this gateway has seen. */
  lastWriter(id: string): string | undefined;
  /** Queues a requested round: one asked of whichever gateway holds the device. */
  requestRound(r: RoundRecord): void;
  /** Takes the requested rounds of these devices not past their deadline (each goes to one gateway only). */
  takeRequested(deviceIds: readonly string[], now: number): Promise<RoundRecord[]>;
  /**
   * Withdraws requested rounds nobody took: lists their devices as unreachable in their batches
   * and makes the rounds untakeable, in one transaction. Returns the rounds withdrawn. Their rows
   * stay until forgetWithdrawn, so that a reader of a batch and then of its rounds, on either
   * side of this commit, never finds a round listed and missing.
   */
  withdrawRequested(roundIds: readonly string[], now: number): Promise<RoundRecord[]>;
  /** Deletes withdrawn requested rounds (a few seconds after withdrawRequested). */
  forgetWithdrawn(roundIds: readonly string[], now: number): Promise<void>;
  /** The requested rounds this gateway owns (it asked for them, or adopted them). */
  ownRequested(): Promise<RoundRecord[]>;
  /** Records this gateway alive; resolves with the gateways seen within `leaseMs` (this one included). */
  heartbeat(leaseMs: number): Promise<string[]>;
  /** Takes over the pending rounds of gateways not seen within `leaseMs`. */
  adoptRounds(leaseMs: number): Promise<StoredRound[]>;
  /** Forgets this gateway's heartbeat (a clean shutdown: its pending rounds are adopted at once). */
  leave(): Promise<void>;
  /** Takes over the rollouts of gateways not seen within `leaseMs` (postgres-rollouts.ts). */
  adoptRollouts(leaseMs: number): Promise<Rollout[]>;
}

// PostgreSQL's int8 (BIGINT) as a JS number, refused beyond 2^53 rather than rounded.
const INT8_OID = 20;
function parseInt8(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n))
    throw new RangeError(`BIGINT ${text} is beyond the exact range of a JS number (2^53)`);
  return n;
}
const TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary'
      ? parseInt8
      : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/** The URL without its password, for logs. */
export function describePostgresUrl(url: string): string {
  try {
    const u = new URL(url);
    u.password = '';
    return u.toString();
  } catch {
    return 'postgres (unparsable URL)';
  }
}

/** SQLSTATE classes 22 (data exception) and 23 (integrity constraint): the row, not the server. */
function isRefusal(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return (
    (typeof code === 'string' && (code.startsWith('22') || code.startsWith('23'))) ||
    err instanceof TypeError ||
    err instanceof RangeError
  );
}

const DEVICE_COLUMNS = [...DEVICES.columns, 'version', 'written_by'] as const;
const ROUND_COLUMNS = [...ROUNDS.columns, 'owner', 'requested'] as const;
const ROUND_SELECT = [...ROUNDS.columns, 'requested'];
const DEVICE_SELECT = [...DEVICES.columns, 'version', 'written_by'];

type VersionedDeviceRow = DeviceRow & { version: number; written_by: string };
type StoredRoundRow = RoundRow & { requested: boolean };

/** One queued write, as the batch that commits it sees it. */
type Op =
  | { readonly kind: 'device'; readonly what: string; readonly record: DeviceRecord; readonly row: DeviceRow }
  | { readonly kind: 'round'; readonly what: string; readonly row: RoundRow }
  | { readonly kind: 'requested'; readonly what: string; readonly row: RoundRow }
  | {
      readonly kind: 'event';
      readonly what: string;
      readonly event: PostureEvent;
      readonly row: PostureEventRow;
    }
  | { readonly kind: 'admit'; readonly what: string; readonly row: AllowlistRow }
  | { readonly kind: 'revoke'; readonly what: string; readonly entry: string }
  | { readonly kind: 'release'; readonly what: string; readonly row: ReleaseRow }
  | { readonly kind: 'unrelease'; readonly what: string; readonly name: string; readonly version: string }
  | { readonly kind: 'batch'; readonly what: string; readonly row: BatchRow }
  /** A row of a table with no cross-gateway rules (releases' manifests, MCUs, rollouts, floors). */
  | { readonly kind: 'row'; readonly what: string; readonly table: PlainTable; readonly row: object }
  | { readonly kind: 'unrow'; readonly what: string; readonly table: PlainTable; readonly key: string };

/**
 * Tables written as rows, inserted or upserted by their key (tables.ts): no versions, no owners.
 * An insert-only one (no key) refuses a second row with the same primary key: a refusal, reported.
 */
// biome-ignore lint/suspicious/noExplicitAny: rows of several tables travel together here
type PlainTable = Table<any, any>;
const PLAIN_TABLES: readonly PlainTable[] = [RELEASE_MANIFESTS, MCU_ADMISSIONS, ROLLOUTS, SWARM_FLOORS];

type Kind = Op['kind'];
type OpOf<K extends Kind> = Extract<Op, { kind: K }>;

/** Queued writes by kind; statements run in the order of apply(), devices first. */
type Buckets = { [K in Kind]: OpOf<K>[] };

interface Batch {
  readonly ops: Buckets;
  /** The sequence number of the last write it holds. */
  readonly upTo: number;
  readonly tables: Set<string>;
  readonly devices: Set<string>;
  size: number;
}

interface BaseVersion {
  readonly version: number;
  readonly writer: string;
  /** The row's labels (JSON text): whether a refused write changed them. */
  readonly labels: string;
}

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
}

export class PostgresStore implements SharedStore {
  readonly describe: string;
  readonly gatewayId: string;
  private readonly queue: WriteQueue;
  /** Handed over by the queue, not committed yet, oldest first. */
  private readonly handed: Batch[] = [];
  private building: Batch | undefined;
  private pumping = false;
  private waiters: Waiter[] = [];
  /** Writes made so far, and the last of them committed. */
  private written = 0;
  private committedUpTo = 0;
  private catchingUp: { readonly upTo: number; readonly resolve: () => void }[] = [];
  private failing = false;
  private closed = false;
  private readonly base = new Map<string, BaseVersion>();
  /** Devices whose last write was refused as a conflict and not reloaded since. */
  private readonly conflicted = new Set<string>();
  private counters = { commits: 0, writes: 0, failedWrites: 0, conflicts: 0 };
  private failingSince: number | undefined;
  private lastError: { readonly message: string; readonly at: number } | undefined;
  private readonly onWriteError: (err: Error) => void;
  private readonly sharedRollouts: PgRollouts;
  private readonly artifacts: PgArtifacts;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly opts: PostgresStoreOptions,
  ) {
    this.describe = `postgres ${describePostgresUrl(opts.url)}`;
    this.gatewayId = opts.gatewayId;
    this.onWriteError = opts.onWriteError ?? ((err) => process.emitWarning(err));
    const transaction = <T>(fn: (client: pg.PoolClient) => Promise<T>) => this.transaction(fn);
    this.sharedRollouts = new PgRollouts({
      pool,
      gatewayId: opts.gatewayId,
      visible: () => this.visible(ROLLOUTS.name),
      transaction,
    });
    this.artifacts = new PgArtifacts(pool, transaction);
    this.queue = new WriteQueue(
      (writes) => this.handOver(writes),
      // Handing a batch over never fails: commits, their retries and their failures are this
      // store's (pump), so the queue's own bound and retry never come into play.
      {
        flushDelayMs: opts.flushDelayMs ?? 20,
        maxBatch: opts.maxBatch ?? 1000,
        maxQueued: Number.MAX_SAFE_INTEGER,
        maxRetryMs: 5000,
        now: Date.now,
      },
      (err) => this.onWriteError(err instanceof Error ? err : new Error(String(err))),
    );
  }

  /** Connects, migrates (several gateways may start at once) and opens the store. */
  static async open(opts: PostgresStoreOptions): Promise<PostgresStore> {
    const pool = new pg.Pool({
      connectionString: opts.url,
      max: opts.poolSize ?? 6,
      types: TYPES,
      connectionTimeoutMillis: 10_000,
      application_name: `vigil-gateway ${opts.gatewayId}`.slice(0, 63),
    });
    // An idle connection the server dropped: the pool replaces it; a query reports its own error.
    pool.on('error', (err) => (opts.onWriteError ?? ((e) => process.emitWarning(e)))(err));
    try {
      const client = await pool.connect();
      try {
        await migratePostgres(client, describePostgresUrl(opts.url));
      } finally {
        client.release();
      }
    } catch (err) {
      await pool.end().catch(() => {});
      const e = err as Error;
      throw new Error(
        `posture store ${describePostgresUrl(opts.url)}: ${e.message}; check the database URL in gateway.json and that the server accepts this user`,
        { cause: err },
      );
    }
    return new PostgresStore(pool, opts);
  }

  get healthy(): boolean {
    return !this.failing && !this.closed;
  }

  stats(): StoreStats & { readonly conflicts: number } {
    return {
      ...this.counters,
      coalesced: this.queue.coalesced,
      queued: this.queue.length + this.handed.reduce((n, b) => n + b.size, 0),
      dropped: 0,
    };
  }

  /** Writes are never dropped here: while the server is away they wait, in memory, in order. */
  health(): StoreHealth {
    return {
      writable: !this.failing,
      queued: this.stats().queued,
      dropped: 0,
      failingSince: this.failingSince ?? null,
      lastError: this.lastError ?? null,
    };
  }

  // Writer: queued, synchronous.

  private write(op: Op, table: string, key?: string): void {
    if (this.closed) throw new Error(`posture store ${this.describe} is closed: cannot ${op.what}`);
    this.written++;
    const write: Write = {
      table,
      what: op.what,
      run: () => {
        const b = this.building!;
        (b.ops[op.kind] as Op[]).push(op);
        if (op.kind === 'device') b.devices.add(op.record.id);
        b.size++;
      },
    };
    this.queue.push(write, key);
  }

  saveDevice(d: DeviceRecord): void {
    this.write(
      { kind: 'device', what: `saveDevice ${d.id}`, record: d, row: DEVICES.toRow(d) },
      'devices',
      writeKey.device(d.id),
    );
  }

  saveRound(r: RoundRecord): void {
    this.write(
      { kind: 'round', what: `saveRound ${r.id}`, row: ROUNDS.toRow(r) },
      'rounds',
      writeKey.round(r.id),
    );
  }

  requestRound(r: RoundRecord): void {
    this.write(
      { kind: 'requested', what: `requestRound ${r.id}`, row: ROUNDS.toRow(r) },
      'rounds',
      writeKey.round(r.id),
    );
  }

  addPostureEvent(e: PostureEvent): void {
    const what = `addPostureEvent ${e.deviceId}`;
    this.write({ kind: 'event', what, event: e, row: POSTURE_EVENTS.toRow(e) }, 'posture_events');
  }

  saveBatch(b: BatchRecord): void {
    this.write(
      { kind: 'batch', what: `saveBatch ${b.id}`, row: BATCHES.toRow(b) },
      'batches',
      writeKey.batch(b.id),
    );
  }

  admit(ekHashOrDeviceId: string, note?: string): void {
    const entry = allowlistEntry(ekHashOrDeviceId);
    const row = { entry, note: note ?? null, admitted_at: Date.now() };
    this.write({ kind: 'admit', what: `admit ${entry}`, row }, 'allowlist', writeKey.allowlist(entry));
  }

  revoke(ekHashOrDeviceId: string): void {
    const entry = allowlistEntry(ekHashOrDeviceId);
    this.write({ kind: 'revoke', what: `revoke ${entry}`, entry }, 'allowlist', writeKey.allowlist(entry));
  }

  addRelease(r: Release): void {
    const what = `addRelease ${r.name} ${r.version}`;
    this.write(
      { kind: 'release', what, row: RELEASES.toRow(r) },
      'releases',
      writeKey.release(r.name, r.version),
    );
  }

  removeRelease(name: string, version: string): void {
    const what = `removeRelease ${name} ${version}`;
    this.write({ kind: 'unrelease', what, name, version }, 'releases', writeKey.release(name, version));
  }

  addReleaseManifest(r: ReleaseManifestRecord): void {
    this.plain(RELEASE_MANIFESTS, r, `addReleaseManifest ${r.name} seq ${r.seq}`);
  }

  admitMcu(a: McuAdmission): void {
    this.plain(MCU_ADMISSIONS, a, `admitMcu ${a.identity}`, writeKey.mcu(a.identity));
  }

  revokeMcu(identity: string): void {
    this.write(
      { kind: 'unrow', what: `revokeMcu ${identity}`, table: MCU_ADMISSIONS, key: identity },
      MCU_ADMISSIONS.name,
      writeKey.mcu(identity),
    );
  }

  saveRollout(r: Rollout): void {
    this.plain(ROLLOUTS, r, `saveRollout ${r.spec.id}`, writeKey.rollout(r.spec.id));
  }

  saveSwarmFloor(f: SwarmFloor): void {
    this.plain(SWARM_FLOORS, f, `saveSwarmFloor ${f.swarm} ${f.name}`, writeKey.swarmFloor(f.swarm, f.name));
  }

  private plain<R, Row extends object>(table: Table<R, Row>, record: R, what: string, key?: string): void {
    this.write({ kind: 'row', what, table, row: table.toRow(record) }, table.name, key);
  }

  // Commits: batches handed over by the queue, one transaction each, strictly in order.

  private handOver(writes: readonly Write[]): void {
    const ops: Buckets = {
      device: [],
      round: [],
      requested: [],
      event: [],
      revoke: [],
      admit: [],
      unrelease: [],
      release: [],
      batch: [],
      unrow: [],
      row: [],
    };
    const batch: Batch = { ops, upTo: this.written, tables: new Set(), devices: new Set(), size: 0 };
    this.building = batch;
    try {
      for (const w of writes) {
        batch.tables.add(w.table);
        w.run();
      }
    } finally {
      this.building = undefined;
    }
    this.handed.push(batch);
    void this.pump();
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    let attempt = 0;
    try {
      while (this.handed.length > 0) {
        const batch = this.handed[0]!;
        try {
          await this.commit(batch);
          this.handed.shift();
          attempt = 0;
          if (this.failing) {
            this.failing = false;
            this.failingSince = undefined;
            this.onWriteError(new Error(`posture store ${this.describe}: commits succeed again`));
          }
        } catch (err) {
          const e = err instanceof Error ? err : new Error(String(err));
          this.lastError = { message: e.message, at: Date.now() };
          if (!this.failing) {
            this.failing = true;
            this.failingSince = Date.now();
            this.onWriteError(
              new Error(
                `posture store ${this.describe}: a commit failed (${e.message}); its ${batch.size} write(s) wait and are retried`,
                { cause: err },
              ),
            );
          }
          for (const w of this.waiters.splice(0)) w.reject(e);
          if (this.closed && this.pool.ended) return;
          await new Promise((r) => setTimeout(r, Math.min(5000, 100 * 2 ** attempt++)).unref());
        }
      }
    } finally {
      this.pumping = false;
    }
    for (const w of this.waiters.splice(0)) w.resolve();
  }

  /** Resolves once every batch handed over so far is committed; rejects when a commit fails. */
  private committed(): Promise<void> {
    if (this.handed.length === 0 && !this.pumping) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      void this.pump();
    });
  }

  private async commit(batch: Batch): Promise<void> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      let outcome: Outcome;
      try {
        outcome = await this.apply(client, batch, false);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch((e: Error) => {
          broken = e;
        });
        if (broken || !isRefusal(err)) throw err;
        // One row refused: commit the others, each under a savepoint, and report that one
        // (as SQLite does, where a refused statement is backed out alone).
        await client.query('BEGIN');
        outcome = await this.apply(client, batch, true);
        await client.query('COMMIT');
      }
      this.committedBatch(batch, outcome);
    } catch (err) {
      if (!isRefusal(err)) broken ??= err as Error;
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release(broken);
    }
  }

  /** Runs a batch's statements inside the open transaction. */
  private async apply(client: pg.PoolClient, batch: Batch, oneByOne: boolean): Promise<Outcome> {
    const refused: { what: string; error: string }[] = [];
    const written = new Map<string, { version: number; labels: string }>();
    const run = async <K extends Kind>(
      kind: K,
      statements: (ops: readonly OpOf<K>[]) => Statement[],
      ops: readonly OpOf<K>[] = batch.ops[kind],
    ) => {
      if (ops.length === 0) return [] as pg.QueryResult[];
      if (!oneByOne) {
        const results: pg.QueryResult[] = [];
        for (const s of statements(ops)) results.push(await client.query(s));
        return results;
      }
      const results: pg.QueryResult[] = [];
      for (const op of ops) {
        await client.query('SAVEPOINT one');
        try {
          for (const s of statements([op])) results.push(await client.query(s));
          await client.query('RELEASE SAVEPOINT one');
        } catch (err) {
          if (!isRefusal(err)) throw err;
          await client.query('ROLLBACK TO SAVEPOINT one');
          refused.push({ what: op.what, error: err instanceof Error ? err.message : String(err) });
        }
      }
      return results;
    };

    // Devices: each write names the version it was based on; the server skips (and does not
    // return) a row whose version moved on, which is how a conflict shows.
    const deviceOps = batch.ops.device;
    const next = new Map(deviceOps.map((o) => [o.record.id, (this.base.get(o.record.id)?.version ?? 0) + 1]));
    for (const r of await run('device', (ops) =>
      insertRows(
        'devices',
        DEVICE_COLUMNS,
        ops.map((o) => [...rowValues(o.row, DEVICES.columns), next.get(o.record.id)!, this.gatewayId]),
        upsertTail('devices', DEVICE_COLUMNS, DEVICES.key, {
          where: '$table.version = EXCLUDED.version - 1',
          returning: 'id',
        }),
      ),
    )) {
      for (const row of r.rows as { id: string }[]) {
        const op = deviceOps.find((o) => o.record.id === row.id)!;
        written.set(row.id, { version: next.get(row.id)!, labels: op.row.labels });
      }
    }
    const refusedWhat = new Set(refused.map((r) => r.what));
    const conflicts = new Map<
      string,
      { refused?: DeviceRecord; baseLabels?: string; events: PostureEvent[] }
    >();
    for (const o of deviceOps) {
      if (written.has(o.record.id) || refusedWhat.has(o.what)) continue;
      const base = this.base.get(o.record.id)?.labels;
      conflicts.set(o.record.id, { refused: o.record, ...(base && { baseLabels: base }), events: [] });
    }
    for (const id of this.conflicted)
      if (!written.has(id) && !conflicts.has(id)) conflicts.set(id, { events: [] });

    const roundTail = upsertTail('rounds', ROUND_COLUMNS, ROUNDS.key);
    await run('round', (ops) =>
      insertRows(
        'rounds',
        ROUND_COLUMNS,
        ops.map((o) => [...rowValues(o.row, ROUNDS.columns), this.gatewayId, false]),
        roundTail,
      ),
    );
    await run('requested', (ops) =>
      insertRows(
        'rounds',
        ROUND_COLUMNS,
        ops.map((o) => [...rowValues(o.row, ROUNDS.columns), this.gatewayId, true]),
        'ON CONFLICT (id) DO NOTHING',
      ),
    );
    // Posture events decided on a record the server refused are refused with it.
    const kept = batch.ops.event.filter((o) => {
      const c = conflicts.get(o.event.deviceId);
      c?.events.push(o.event);
      return c === undefined;
    });
    await run(
      'event',
      (ops) =>
        insertRows(
          'posture_events',
          POSTURE_EVENTS.columns,
          ops.map((o) => rowValues(o.row, POSTURE_EVENTS.columns)),
          'ON CONFLICT (device_id, at, from_posture, to_posture) DO NOTHING',
        ),
      kept,
    );
    await run('revoke', (ops) => [
      { text: 'DELETE FROM allowlist WHERE entry = ANY($1)', values: [ops.map((o) => o.entry)] },
    ]);
    await run('admit', (ops) =>
      upsertRows(
        ALLOWLIST,
        ops.map((o) => o.row),
      ),
    );
    await run('unrelease', (ops) => [
      {
        text: 'DELETE FROM releases WHERE (name, version) IN (SELECT * FROM unnest($1::text[], $2::text[]))',
        values: [ops.map((o) => o.name), ops.map((o) => o.version)],
      },
    ]);
    await run('release', (ops) =>
      upsertRows(
        RELEASES,
        ops.map((o) => o.row),
      ),
    );
    await run('batch', (ops) =>
      upsertRows(
        BATCHES,
        ops.map((o) => o.row),
      ),
    );
    // Plain tables, by table: deletions first, then inserts and upserts by key.
    for (const table of PLAIN_TABLES) {
      await run(
        'unrow',
        (ops) => [
          {
            text: `DELETE FROM ${table.name} WHERE ${table.key[0]} = ANY($1)`,
            values: [ops.map((o) => o.key)],
          },
        ],
        batch.ops.unrow.filter((o) => o.table === table),
      );
      await run(
        'row',
        (ops) =>
          upsertRows(
            table,
            ops.map((o) => o.row),
          ),
        batch.ops.row.filter((o) => o.table === table),
      );
    }
    return { refused, written, conflicts };
  }

  private committedBatch(batch: Batch, o: Outcome): void {
    this.counters.commits++;
    this.committedUpTo = batch.upTo;
    const caught = this.catchingUp.filter((c) => c.upTo <= batch.upTo);
    this.catchingUp = this.catchingUp.filter((c) => c.upTo > batch.upTo);
    for (const c of caught) c.resolve();
    this.counters.writes += batch.size - o.refused.length;
    for (const [id, w] of o.written) {
      this.base.set(id, { version: w.version, writer: this.gatewayId, labels: w.labels });
      this.conflicted.delete(id);
    }
    if (o.refused.length > 0) {
      this.counters.failedWrites += o.refused.length;
      this.onWriteError(new StoreWriteError(o.refused));
    }
    if (o.conflicts.size > 0) {
      for (const id of o.conflicts.keys()) this.conflicted.add(id);
      this.counters.conflicts += o.conflicts.size;
      this.opts.onConflict?.(
        [...o.conflicts].map(([id, c]) => ({
          id,
          ...(c.refused && { refused: c.refused }),
          ...(c.baseLabels !== undefined && { baseLabels: JSON.parse(c.baseLabels) }),
          events: c.events,
        })),
      );
    }
    this.opts.onCommit?.({ devices: [...o.written.keys()], tables: batch.tables });
  }

  caughtUp(): Promise<void> {
    const upTo = this.written;
    if (this.committedUpTo >= upTo) return Promise.resolve();
    return new Promise((resolve) => this.catchingUp.push({ upTo, resolve }));
  }

  // Queries: each first waits for the commit of queued writes to the tables it reads.

  private async visible(...tables: string[]): Promise<void> {
    this.open();
    if (this.queue.pendingFor(...tables)) this.queue.flush();
    if (this.handed.some((b) => tables.some((t) => b.tables.has(t)))) await this.committed();
  }

  private open(): void {
    if (this.closed) throw new Error(`posture store ${this.describe} is closed`);
  }

  private async rows<R>(text: string, values: unknown[] = []): Promise<R[]> {
    return (await this.pool.query(text, values)).rows as R[];
  }

  /** Whether a write of this gateway to the device is queued or being committed. */
  private writePending(id: string): boolean {
    return this.queue.queued(writeKey.device(id)) !== undefined || this.handed.some((b) => b.devices.has(id));
  }

  /** Records the version a device row was read at, unless a newer one is known or a write is pending. */
  private devicesRead(rows: readonly VersionedDeviceRow[]): DeviceRecord[] {
    const out: DeviceRecord[] = [];
    for (const row of rows) {
      const known = this.base.get(row.id);
      if (!this.writePending(row.id) && !(known && known.version > row.version)) {
        this.base.set(row.id, { version: row.version, writer: row.written_by, labels: row.labels });
        this.conflicted.delete(row.id);
      }
      out.push(DEVICES.fromRow(row));
    }
    return out;
  }

  async devices(): Promise<DeviceRecord[]> {
    await this.visible('devices');
    return this.devicesRead(await this.rows(`${selectFrom('devices', DEVICE_SELECT)} ORDER BY id`));
  }

  async device(id: string): Promise<DeviceRecord | undefined> {
    await this.visible('devices');
    return this.devicesRead(
      await this.rows(`${selectFrom('devices', DEVICE_SELECT)} WHERE id = $1`, [id]),
    )[0];
  }

  async reloadDevices(
    ids: readonly string[] | 'all',
    accept: (records: DeviceRecord[]) => void,
  ): Promise<void> {
    await this.visible('devices');
    const rows = await this.rows<VersionedDeviceRow>(
      ids === 'all'
        ? selectFrom('devices', DEVICE_SELECT)
        : `${selectFrom('devices', DEVICE_SELECT)} WHERE id = ANY($1)`,
      ids === 'all' ? [] : [ids],
    );
    // Only rows whose version this gateway now records go to the fleet, in the same tick: a
    // device with a write of ours pending keeps our copy (a conflict, if any, reloads it).
    const fresh = rows.filter(
      (r) => !this.writePending(r.id) && (this.base.get(r.id)?.version ?? 0) <= r.version,
    );
    accept(this.devicesRead(fresh));
  }

  lastWriter(id: string): string | undefined {
    return this.base.get(id)?.writer;
  }

  async round(id: string): Promise<RoundRecord | undefined> {
    await this.visible('rounds');
    const [row] = await this.rows<RoundRow>(`${selectFrom('rounds', ROUNDS.columns)} WHERE id = $1`, [id]);
    return row && ROUNDS.fromRow(row);
  }

  async rounds(ids: readonly string[]): Promise<RoundRecord[]> {
    if (ids.length === 0) return [];
    await this.visible('rounds');
    return (
      await this.rows<RoundRow>(`${selectFrom('rounds', ROUNDS.columns)} WHERE id = ANY($1)`, [ids])
    ).map(ROUNDS.fromRow);
  }

  /** The pending rounds this gateway owns (issued, not merely requested), oldest deadline first. */
  async pendingRounds(): Promise<RoundRecord[]> {
    await this.visible('rounds');
    return (
      await this.rows<RoundRow>(
        `${selectFrom('rounds', ROUNDS.columns)} WHERE state = 'pending' AND owner = $1 AND NOT requested ORDER BY deadline_at, seq`,
        [this.gatewayId],
      )
    ).map(ROUNDS.fromRow);
  }

  async recentRounds(deviceId: string, limit: number): Promise<RoundRecord[]> {
    await this.visible('rounds');
    return (
      await this.rows<RoundRow>(
        `${selectFrom('rounds', ROUNDS.columns)} WHERE device_id = $1 ORDER BY issued_at DESC, seq DESC LIMIT $2`,
        [deviceId, limit],
      )
    ).map(ROUNDS.fromRow);
  }

  async latestRounds(): Promise<Map<string, RoundRecord>> {
    await this.visible('rounds', 'devices');
    const rows = await this.rows<RoundRow>(
      `SELECT DISTINCT ON (device_id) ${ROUNDS.columns.join(', ')} FROM rounds ORDER BY device_id, issued_at DESC, seq DESC`,
    );
    return new Map(rows.map((row) => [row.device_id, ROUNDS.fromRow(row)]));
  }

  async postureEvents(deviceId: string, limit: number): Promise<PostureEvent[]> {
    await this.visible('posture_events');
    return (
      await this.rows<PostureEventRow>(
        `${selectFrom('posture_events', POSTURE_EVENTS.columns)} WHERE device_id = $1 ORDER BY seq DESC LIMIT $2`,
        [deviceId, limit],
      )
    ).map(POSTURE_EVENTS.fromRow);
  }

  async admitted(): Promise<string[]> {
    await this.visible('allowlist');
    return (await this.rows<{ entry: string }>('SELECT entry FROM allowlist ORDER BY entry COLLATE "C"')).map(
      (r) => r.entry,
    );
  }

  async releases(): Promise<Release[]> {
    await this.visible('releases');
    return (
      await this.rows<ReleaseRow>(
        `${selectFrom('releases', RELEASES.columns)} ORDER BY name COLLATE "C", added_at, version COLLATE "C"`,
      )
    ).map(RELEASES.fromRow);
  }

  async releaseManifests(name?: string): Promise<ReleaseManifestRecord[]> {
    await this.visible(RELEASE_MANIFESTS.name);
    const select = selectFrom(RELEASE_MANIFESTS.name, RELEASE_MANIFESTS.columns);
    const order = 'ORDER BY name COLLATE "C", seq';
    const rows =
      name === undefined
        ? await this.rows<object>(`${select} ${order}`)
        : await this.rows<object>(`${select} WHERE name = $1 ${order}`, [name]);
    return rows.map((r) => RELEASE_MANIFESTS.fromRow(r as never));
  }

  async releaseManifest(name: string, seq: number): Promise<ReleaseManifestRecord | undefined> {
    await this.visible(RELEASE_MANIFESTS.name);
    const [row] = await this.rows<object>(
      `${selectFrom(RELEASE_MANIFESTS.name, RELEASE_MANIFESTS.columns)} WHERE name = $1 AND seq = $2`,
      [name, seq],
    );
    return row && RELEASE_MANIFESTS.fromRow(row as never);
  }

  async mcuAdmissions(): Promise<McuAdmission[]> {
    await this.visible(MCU_ADMISSIONS.name);
    const rows = await this.rows<object>(
      `${selectFrom(MCU_ADMISSIONS.name, MCU_ADMISSIONS.columns)} ORDER BY identity COLLATE "C"`,
    );
    return rows.map((r) => MCU_ADMISSIONS.fromRow(r as never));
  }

  async rollout(id: string): Promise<Rollout | undefined> {
    await this.visible(ROLLOUTS.name);
    const [row] = await this.rows<object>(`${selectFrom(ROLLOUTS.name, ROLLOUTS.columns)} WHERE id = $1`, [
      id,
    ]);
    return row && ROLLOUTS.fromRow(row as never);
  }

  async rollouts(): Promise<Rollout[]> {
    await this.visible(ROLLOUTS.name);
    const rows = await this.rows<object>(
      `${selectFrom(ROLLOUTS.name, ROLLOUTS.columns)} ORDER BY updated_at DESC, id COLLATE "C" DESC`,
    );
    return rows.map((r) => ROLLOUTS.fromRow(r as never));
  }

  async swarmFloors(swarm: string): Promise<SwarmFloor[]> {
    await this.visible(SWARM_FLOORS.name);
    const rows = await this.rows<object>(
      `${selectFrom(SWARM_FLOORS.name, SWARM_FLOORS.columns)} WHERE swarm = $1 ORDER BY name COLLATE "C"`,
      [swarm],
    );
    return rows.map((r) => SWARM_FLOORS.fromRow(r as never));
  }

  async batch(id: string): Promise<BatchRecord | undefined> {
    await this.visible('batches');
    const [row] = await this.rows<BatchRow>(`${selectFrom('batches', BATCHES.columns)} WHERE id = $1`, [id]);
    return row && BATCHES.fromRow(row);
  }

  async pruneRounds(before: number, limit: number): Promise<number> {
    // Queued writes first, so that a queued update cannot bring back a round deleted here.
    await this.visible('rounds');
    const r = await this.pool.query(
      `DELETE FROM rounds WHERE id IN (
         SELECT id FROM rounds WHERE state <> 'pending' AND issued_at < $1 ORDER BY issued_at LIMIT $2)`,
      [before, limit],
    );
    return r.rowCount ?? 0;
  }

  // Several gateways (SharedStore).

  async takeRequested(deviceIds: readonly string[], now: number): Promise<RoundRecord[]> {
    if (deviceIds.length === 0) return [];
    await this.visible('rounds');
    // One UPDATE: two gateways that both think they hold a device cannot both take its round.
    const rows = await this.rows<RoundRow>(
      `UPDATE rounds SET owner = $1, requested = false
        WHERE requested AND device_id = ANY($2) AND deadline_at > $3
        RETURNING ${ROUNDS.columns.join(', ')}`,
      [this.gatewayId, deviceIds, now],
    );
    return rows.map(ROUNDS.fromRow);
  }

  async withdrawRequested(roundIds: readonly string[], now: number): Promise<RoundRecord[]> {
    if (roundIds.length === 0) return [];
    await this.visible('rounds', 'batches');
    return this.transaction(async (client) => {
      const gone = (
        await client.query<RoundRow>(
          `UPDATE rounds SET deadline_at = LEAST(deadline_at, $2) WHERE requested AND id = ANY($1)
           RETURNING ${ROUNDS.columns.join(', ')}`,
          [roundIds, now],
        )
      ).rows.map(ROUNDS.fromRow);
      const byBatch = new Map<string, RoundRecord[]>();
      for (const r of gone) if (r.batchId) byBatch.set(r.batchId, [...(byBatch.get(r.batchId) ?? []), r]);
      for (const [batchId, rounds] of byBatch) {
        const [row] = (
          await client.query<BatchRow>(`${selectFrom('batches', BATCHES.columns)} WHERE id = $1 FOR UPDATE`, [
            batchId,
          ])
        ).rows;
        if (!row) continue;
        const b = BATCHES.fromRow(row);
        const ids = new Set(rounds.map((r) => r.id));
        const updated = BATCHES.toRow({
          ...b,
          rounds: b.rounds.filter((id) => !ids.has(id)),
          unreachable: [
            ...b.unreachable,
            ...rounds.map((r) => r.deviceId).filter((d) => !b.unreachable.includes(d)),
          ],
        });
        await client.query('UPDATE batches SET rounds = $2, unreachable = $3 WHERE id = $1', [
          batchId,
          updated.rounds,
          updated.unreachable,
        ]);
      }
      return gone;
    });
  }

  async forgetWithdrawn(roundIds: readonly string[], now: number): Promise<void> {
    if (roundIds.length === 0) return;
    await this.pool.query('DELETE FROM rounds WHERE requested AND id = ANY($1) AND deadline_at <= $2', [
      roundIds,
      now,
    ]);
  }

  async ownRequested(): Promise<RoundRecord[]> {
    await this.visible('rounds');
    return (
      await this.rows<RoundRow>(
        `${selectFrom('rounds', ROUNDS.columns)} WHERE requested AND owner = $1 ORDER BY deadline_at, seq`,
        [this.gatewayId],
      )
    ).map(ROUNDS.fromRow);
  }

  async heartbeat(leaseMs: number): Promise<string[]> {
    this.open();
    await this.pool.query(
      `INSERT INTO gateways (id, started_at, seen_at) VALUES ($1, now(), now())
       ON CONFLICT (id) DO UPDATE SET seen_at = now()`,
      [this.gatewayId],
    );
    const rows = await this.rows<{ id: string }>(
      `SELECT id FROM gateways WHERE seen_at > now() - make_interval(secs => $1::float8 / 1000) ORDER BY id`,
      [leaseMs],
    );
    return rows.map((r) => r.id);
  }

  async adoptRounds(leaseMs: number): Promise<StoredRound[]> {
    await this.visible('rounds');
    return this.transaction(async (client) => {
      // Locking the rows of the gateways found dead orders this against their heartbeats: a
      // gateway coming back either renews its row first (and is not dead here) or waits until
      // this commits, and then finds its rounds adopted.
      const dead = (
        await client.query<{ id: string }>(
          `SELECT id FROM gateways WHERE id <> $1 AND seen_at <= now() - make_interval(secs => $2::float8 / 1000)
           FOR UPDATE`,
          [this.gatewayId, leaseMs],
        )
      ).rows.map((r) => r.id);
      if (dead.length === 0) return [];
      const { rows } = await client.query<StoredRoundRow>(
        `UPDATE rounds SET owner = $1 WHERE state = 'pending' AND owner = ANY($2)
         RETURNING ${ROUND_SELECT.join(', ')}`,
        [this.gatewayId, dead],
      );
      return rows.map((row) => ({ ...ROUNDS.fromRow(row), requested: row.requested }));
    });
  }

  ownRollouts(): Promise<Rollout[]> {
    return this.sharedRollouts.own();
  }

  liveRollouts(): Promise<OwnedRollout[]> {
    return this.sharedRollouts.live();
  }

  rolloutRow(id: string): Promise<OwnedRollout | undefined> {
    return this.sharedRollouts.row(id);
  }

  createRollout(r: Rollout, check: (holding: readonly Rollout[]) => void): Promise<void> {
    this.open();
    return this.sharedRollouts.create(r, check);
  }

  saveOwnedRollout(r: Rollout): Promise<boolean> {
    this.open();
    return this.sharedRollouts.save(r);
  }

  adoptRollouts(leaseMs: number): Promise<Rollout[]> {
    return this.sharedRollouts.adopt(leaseMs);
  }

  putArtifact(sha256: string, size: number, file: string): Promise<void> {
    this.open();
    return this.artifacts.putArtifact(sha256, size, file);
  }

  readArtifact(sha256: string): Promise<StoredArtifact | undefined> {
    this.open();
    return this.artifacts.readArtifact(sha256);
  }

  async leave(): Promise<void> {
    // Marked gone rather than deleted: the row is what adoption locks (see adoptRounds).
    await this.pool.query("UPDATE gateways SET seen_at = '-infinity' WHERE id = $1", [this.gatewayId]);
  }

  /** Runs `fn` in a transaction on one connection; a connection that broke is not reused. */
  private async transaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch((e: Error) => {
        broken = e;
      });
      throw err;
    } finally {
      client.release(broken);
    }
  }

  // Life cycle.

  async flush(): Promise<void> {
    if (this.closed && this.pool.ended) return;
    this.queue.flush();
    await this.committed();
  }

  async integrityCheck(): Promise<string> {
    await this.flush();
    const findings: string[] = [];
    const [v] = await this.rows<{ v: number }>('SELECT max(version) AS v FROM schema_migrations');
    if (v?.v !== PG_SCHEMA_VERSION)
      findings.push(`schema version ${v?.v} where this gateway expects ${PG_SCHEMA_VERSION}`);
    // Every column tables.ts names must exist: a schema edited by hand shows here.
    const cols = await this.rows<{ table_name: string; column_name: string }>(
      `SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()`,
    );
    const have = new Set(cols.map((c) => `${c.table_name}.${c.column_name}`));
    for (const t of [DEVICES, ROUNDS, POSTURE_EVENTS, ALLOWLIST, RELEASES, BATCHES, ...PLAIN_TABLES])
      for (const c of t.columns)
        if (!have.has(`${t.name}.${c}`)) findings.push(`column ${t.name}.${c} is missing`);
    // The server's own check of the B-tree indexes, where the amcheck extension is installed.
    const [amcheck] = await this.rows<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_extension WHERE extname = 'amcheck'",
    );
    if ((amcheck?.n ?? 0) > 0) {
      try {
        await this.pool.query(
          `SELECT bt_index_check(i.indexrelid) FROM pg_index i
             JOIN pg_class t ON t.oid = i.indrelid JOIN pg_class x ON x.oid = i.indexrelid
             JOIN pg_am a ON a.oid = x.relam
            WHERE a.amname = 'btree' AND t.relname = ANY($1)`,
          [
            [
              'devices',
              'rounds',
              'posture_events',
              'allowlist',
              'releases',
              'batches',
              ...PLAIN_TABLES.map((t) => t.name),
            ],
          ],
        );
      } catch (err) {
        findings.push(`amcheck: ${(err as Error).message}`);
      }
    }
    return findings.length === 0 ? 'ok' : findings.join('\n');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      this.queue.flush();
      this.closed = true;
      await this.committed();
    } finally {
      this.closed = true;
      this.queue.dispose();
      await this.pool.end();
    }
  }
}

interface Outcome {
  readonly refused: readonly { what: string; error: string }[];
  readonly written: ReadonlyMap<string, { version: number; labels: string }>;
  readonly conflicts: ReadonlyMap<
    string,
    { refused?: DeviceRecord; baseLabels?: string; events: PostureEvent[] }
  >;
}
