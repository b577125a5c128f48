import type { BatchRecord, DeviceRecord, PostureEvent, Release, RoundRecord } from '../model.ts';

// The gateway's store, as two sides with different contracts.
//
// The writer is the hot path: synchronous, write-behind. A save returns at once; writes are
// queued and committed together (a 10,000-device round is a handful of commits, not 10,000), in
// the order they were made. The verifier never waits on the store between "appraised" and
// "answered", and keeps in memory what it needs to decide (fleet records, rounds in flight), so
// it never reads the store back.
//
// The queries serve the operator API, batches, the dashboard and start-up: asynchronous, so a
// networked engine (PostgreSQL) implements them as it is, and each sees every write made before
// it was called (an engine flushes what a query reads first).
//
// `flush()` is the durability point: when it resolves, what was written survives a crash of the
// process. Writes still queued when the process dies are lost; `close()` flushes.
//
// Several gateways on one database (postgres.ts) add ownership: the gateway holding a device's
// attested connection owns that device's live state and the rounds it issues. That engine keeps,
// beyond these records, each round's owner (pendingRounds returns the caller's own) and a version
// on device rows, so that an update from a gateway with an old copy is refused rather than
// overwriting a newer one. SQLite has a single owner by construction and stores none of it.
// docs/scale.md has the whole of it.

export interface StoreWriter {
  /** Insert or replace the device with this id. */
  saveDevice(d: DeviceRecord): void;
  /** Insert or replace the round with this id (rounds move pending → appraised/stale/abandoned). */
  saveRound(r: RoundRecord): void;
  addPostureEvent(e: PostureEvent): void;
  saveBatch(b: BatchRecord): void;
  /** Allowlist entries are EK hashes (64 hex digits) or device ids (24 hex digits). */
  admit(ekHashOrDeviceId: string, note?: string): void;
  revoke(ekHashOrDeviceId: string): void;
  /** Register a release; registering the same name and version again replaces its digest. */
  addRelease(r: Release): void;
  removeRelease(name: string, version: string): void;
}

export interface StoreQueries {
  devices(): Promise<DeviceRecord[]>;
  device(id: string): Promise<DeviceRecord | undefined>;
  round(id: string): Promise<RoundRecord | undefined>;
  /** The rounds with these ids that exist, in no particular order. */
  rounds(ids: readonly string[]): Promise<RoundRecord[]>;
  /** Every round still `pending`, oldest deadline first: a restarted gateway re-arms them. */
  pendingRounds(): Promise<RoundRecord[]>;
  /** A device's rounds, newest first. */
  recentRounds(deviceId: string, limit: number): Promise<RoundRecord[]>;
  /** The newest round of each device that has one, in one query. */
  latestRounds(): Promise<Map<string, RoundRecord>>;
  /** A device's posture events, newest first. */
  postureEvents(deviceId: string, limit: number): Promise<PostureEvent[]>;
  /** The allowlist's entries, sorted. */
  admitted(): Promise<string[]>;
  releases(): Promise<Release[]>;
  batch(id: string): Promise<BatchRecord | undefined>;
}

export interface Store extends StoreWriter, StoreQueries {
  /** What this store is, for logs and errors: its engine and where. */
  readonly describe: string;
  /**
   * Deletes up to `limit` settled rounds issued before `before` (Unix ms), oldest first; pending
   * rounds are kept whatever their age. Resolves with how many were deleted.
   */
  pruneRounds(before: number, limit: number): Promise<number>;
  /** Commit every queued write. */
  flush(): Promise<void>;
  /** The engine's own consistency check: 'ok' when fine, its findings otherwise. */
  integrityCheck(): Promise<string>;
  /** Flush and release the store; further calls throw. Idempotent. */
  close(): Promise<void>;
}
