import type { BatchRecord, DeviceRecord, PostureEvent, Release, RoundRecord } from '../model.ts';
import type { ReleaseManifestRecord } from '../releases/model.ts';

// The posture store as the rest of the gateway sees it. Synchronous on purpose: the embedded
// engine (better-sqlite3) is synchronous, and a synchronous store keeps the verifier free of
// awaits between "appraised" and "recorded". A networked store (PostgreSQL) will implement this
// interface over a write-behind queue and an in-memory read model, as the SQLite one already
// queues its writes.
//
// Writes are queued and committed in batches; every read sees every write made before it.
// `flush()` is the durability point: when it returns, what was written survives a crash of the
// process. Writes still queued when the process dies are lost; `close()` flushes.

export interface PostureStore {
  // Devices
  loadDevices(): DeviceRecord[];
  device(id: string): DeviceRecord | undefined;
  /** Insert or replace the device with this id. */
  saveDevice(d: DeviceRecord): void;

  // Rounds
  /** Insert or replace the round with this id (rounds move pending → appraised/stale/abandoned). */
  saveRound(r: RoundRecord): void;
  round(id: string): RoundRecord | undefined;
  /** Every round still `pending`, oldest deadline first: a restarted gateway re-arms them. */
  pendingRounds(): RoundRecord[];
  /** A device's rounds, newest first. */
  recentRounds(deviceId: string, limit: number): RoundRecord[];
  /** The rounds issued for a batch, oldest first. */
  roundsOfBatch(batchId: string): RoundRecord[];
  /**
   * Deletes up to `limit` settled rounds issued before `before` (Unix ms), oldest first; pending
   * rounds are kept whatever their age. Returns how many were deleted.
   */
  pruneRounds(before: number, limit: number): number;

  // Posture history
  addPostureEvent(e: PostureEvent): void;
  /** A device's posture events, newest first. */
  postureEvents(deviceId: string, limit: number): PostureEvent[];

  // Admission allowlist: entries are EK hashes (64 hex digits) or device ids (24 hex digits).
  admit(ekHashOrDeviceId: string, note?: string): void;
  revoke(ekHashOrDeviceId: string): void;
  /** Whether this EK is admitted, by its hash or by the device id derived from it. */
  isAdmitted(ekHash: string): boolean;
  admitted(): string[];

  // Software releases registered by operators as reference values
  /** Register a release; registering the same name and version again replaces its digest. */
  addRelease(r: Release): void;
  removeRelease(name: string, version: string): void;
  releases(): Release[];

  // Signed release manifests imported from bundles (gateway/releases/import.ts)
  /** Adds an imported manifest; one with the same name and seq, or name and version, is refused. */
  addReleaseManifest(r: ReleaseManifestRecord): void;
  /** Imported manifests, of one software or of all, by name then seq. */
  releaseManifests(name?: string): ReleaseManifestRecord[];
  releaseManifest(name: string, seq: number): ReleaseManifestRecord | undefined;

  // On-demand batches
  saveBatch(b: BatchRecord): void;
  batch(id: string): BatchRecord | undefined;

  /** Commit every queued write. */
  flush(): void;
  /** The engine's own consistency check: 'ok' when fine, its findings otherwise. */
  integrityCheck(): string;
  /** Flush and release the store; further calls throw. Idempotent. */
  close(): void;
}
