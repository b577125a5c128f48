import type { McuAdmission } from '../mcus/model.ts';
import type { BatchRecord, DeviceRecord, PostureEvent, Release, RoundRecord } from '../model.ts';
import type { ReleaseManifestRecord } from '../releases/model.ts';
import type { Rollout } from '../rollouts/model.ts';
import type { SwarmFloor } from './rollout-rows.ts';

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
  /** An imported signed release; immutable: one with the same name and seq, or name and version, is refused. */
  addReleaseManifest(r: ReleaseManifestRecord): void;
  /** Admit an MCU identity (insert or replace: re-admitting changes its device and note). */
  admitMcu(a: McuAdmission): void;
  revokeMcu(identity: string): void;
  /** Insert or replace the rollout with this id (its whole state). */
  saveRollout(r: Rollout): void;
  /** Insert or replace a swarm's floor for a software. */
  saveSwarmFloor(f: SwarmFloor): void;
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
  /** Imported signed releases, of one software or of all, by name then seq. */
  releaseManifests(name?: string): Promise<ReleaseManifestRecord[]>;
  releaseManifest(name: string, seq: number): Promise<ReleaseManifestRecord | undefined>;
  batch(id: string): Promise<BatchRecord | undefined>;
  /** Admitted MCU identities, by identity. */
  mcuAdmissions(): Promise<McuAdmission[]>;
  rollout(id: string): Promise<Rollout | undefined>;
  /** Every rollout, newest first. */
  rollouts(): Promise<Rollout[]>;
  /** A swarm's committed floors, by software name. */
  swarmFloors(swarm: string): Promise<SwarmFloor[]>;
}

/**
 * Whether the store can write now, for the health endpoint, metrics and logs. Every engine has
 * these: a queue of writes not yet committed, and commits that fail as a whole (a full disk, a
 * read-only file system, a database that went away) while the gateway goes on appraising.
 */
export interface StoreHealth {
  /** False from a failed commit until the next one succeeds. */
  readonly writable: boolean;
  /** Writes waiting for a commit. */
  readonly queued: number;
  /** Writes of history dropped because commits failed while the queue was over its bound. */
  readonly dropped: number;
  /** When commits started failing; null while writable. */
  readonly failingSince: number | null;
  /** The last commit that failed (kept after recovery, so an operator sees what happened). */
  readonly lastError: { readonly message: string; readonly at: number } | null;
}

export interface Store extends StoreWriter, StoreQueries {
  /** What this store is, for logs and errors: its engine and where. */
  readonly describe: string;
  /**
   * Deletes up to `limit` settled rounds issued before `before` (Unix ms), oldest first; pending
   * rounds are kept whatever their age. Resolves with how many were deleted.
   */
  pruneRounds(before: number, limit: number): Promise<number>;
  /**
   * Commit every queued write. Rejects when the store cannot write: the writes stay queued and
   * are retried; a caller that must not act on an unrecorded write (an enrolment) stops there.
   */
  flush(): Promise<void>;
  health(): StoreHealth;
  /** The engine's own consistency check: 'ok' when fine, its findings otherwise. */
  integrityCheck(): Promise<string>;
  /** Flush and release the store; further calls throw. Idempotent. */
  close(): Promise<void>;
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
  /** Writes dropped because the queue was over its bound while commits failed. */
  readonly dropped: number;
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
