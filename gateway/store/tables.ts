import type { McuAdmission } from '../mcus/model.ts';
import type { BatchRecord, DeviceRecord, PostureEvent, Release, RoundRecord } from '../model.ts';
import type { ReleaseManifestRecord } from '../releases/model.ts';
import type { Rollout } from '../rollouts/model.ts';
import { type McuAdmissionRow, mcuAdmissionFromRow, mcuAdmissionToRow } from './mcu-admission-rows.ts';
import {
  type ReleaseManifestRow,
  releaseManifestFromRow,
  releaseManifestToRow,
} from './release-manifest-rows.ts';
import {
  type RolloutRow,
  rolloutFromRow,
  rolloutToRow,
  type SwarmFloor,
  type SwarmFloorRow,
  swarmFloorFromRow,
  swarmFloorToRow,
} from './rollout-rows.ts';
import {
  type BatchRow,
  batchFromRow,
  batchToRow,
  type DeviceRow,
  deviceFromRow,
  deviceToRow,
  type PostureEventRow,
  postureEventFromRow,
  postureEventToRow,
  type ReleaseRow,
  type RoundRow,
  releaseFromRow,
  releaseToRow,
  roundFromRow,
  roundToRow,
} from './rows.ts';

// Each table once: its name, its columns, its key and how a record becomes a row and back. An
// engine builds its statements from these (upserts keyed by `key`), so a second engine adds its
// own SQL dialect and migrations, never a second copy of what the tables hold.

export interface Table<R, Row> {
  readonly name: string;
  readonly columns: readonly (keyof Row & string)[];
  /**
   * Columns of the primary key; an insert with an existing key replaces every other column. Empty
   * for a table that is only ever inserted into (its rows are never replaced).
   */
  readonly key: readonly (keyof Row & string)[];
  toRow(record: R): Row;
  fromRow(row: Row): R;
}

export const DEVICES: Table<DeviceRecord, DeviceRow> = {
  name: 'devices',
  columns: [
    'id',
    'ek_hash',
    'ek_public',
    'ek_cert',
    'ak_public',
    'ak_name',
    'ak_enrolled_at',
    'attester',
    'agent',
    'sw_pcr',
    'labels',
    'posture',
    'reasons',
    'expires',
    'clock',
    'reset_count',
    'restart_count',
    'clock_at',
    'sw_log',
    'first_seen',
    'last_seen',
    'last_round',
  ],
  key: ['id'],
  toRow: deviceToRow,
  fromRow: deviceFromRow,
};

export const ROUNDS: Table<RoundRecord, RoundRow> = {
  name: 'rounds',
  columns: [
    'id',
    'device_id',
    'batch_id',
    'reason',
    'nonce',
    'pcrs',
    'logs',
    'activate',
    'issued_at',
    'deadline_at',
    'state',
    'status',
    'codes',
    'detail',
    'exporter',
    'body',
    'attest',
    'sig',
    'appraised_at',
    'ear',
    'ak_public',
    'mcus',
  ],
  key: ['id'],
  toRow: roundToRow,
  fromRow: roundFromRow,
};

/** Append-only: events have a sequence number of the engine's, not a key of ours. */
export const POSTURE_EVENTS: Table<PostureEvent, PostureEventRow> = {
  name: 'posture_events',
  columns: ['device_id', 'at', 'from_posture', 'to_posture', 'reasons', 'round'],
  key: [],
  toRow: postureEventToRow,
  fromRow: postureEventFromRow,
};

export const RELEASES: Table<Release, ReleaseRow> = {
  name: 'releases',
  columns: ['name', 'version', 'digest', 'added_at'],
  key: ['name', 'version'],
  toRow: releaseToRow,
  fromRow: releaseFromRow,
};

export const BATCHES: Table<BatchRecord, BatchRow> = {
  name: 'batches',
  columns: ['id', 'selector', 'created_at', 'deadline_at', 'rounds', 'unreachable'],
  key: ['id'],
  toRow: batchToRow,
  fromRow: batchFromRow,
};

export interface AllowlistRow {
  entry: string;
  note: string | null;
  admitted_at: number;
}

export const ALLOWLIST: Table<AllowlistRow, AllowlistRow> = {
  name: 'allowlist',
  columns: ['entry', 'note', 'admitted_at'],
  key: ['entry'],
  toRow: (r) => r,
  fromRow: (r) => r,
};

/** Imported signed releases: inserted once, never replaced (the primary key refuses a second). */
export const RELEASE_MANIFESTS: Table<ReleaseManifestRecord, ReleaseManifestRow> = {
  name: 'release_manifests',
  columns: [
    'name',
    'version',
    'seq',
    'digest',
    'kid',
    'manifest',
    'artifact_sha256',
    'artifact_size',
    'artifact_path',
    'imported_at',
  ],
  key: [],
  toRow: releaseManifestToRow,
  fromRow: releaseManifestFromRow,
};

/** Admitted MCU identities (the MCU allowlist): one row per identity, replaced on re-admission. */
export const MCU_ADMISSIONS: Table<McuAdmission, McuAdmissionRow> = {
  name: 'mcu_admissions',
  columns: ['identity', 'device_id', 'note', 'admitted_at'],
  key: ['identity'],
  toRow: mcuAdmissionToRow,
  fromRow: mcuAdmissionFromRow,
};

/** Rollouts, each stored whole (its state as JSON) after every step; `phase` and `swarm` to filter on. */
export const ROLLOUTS: Table<Rollout, RolloutRow> = {
  name: 'rollouts',
  columns: ['id', 'swarm', 'phase', 'state', 'updated_at'],
  key: ['id'],
  toRow: rolloutToRow,
  fromRow: rolloutFromRow,
};

/** The seq each swarm committed per software (gateway/releases/floor.ts decides with it). */
export const SWARM_FLOORS: Table<SwarmFloor, SwarmFloorRow> = {
  name: 'swarm_floors',
  columns: ['swarm', 'name', 'seq', 'digest', 'rollout', 'committed_at'],
  key: ['swarm', 'name'],
  toRow: swarmFloorToRow,
  fromRow: swarmFloorFromRow,
};
