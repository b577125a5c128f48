import type { BatchRecord, DeviceRecord, PostureEvent, Release, RoundRecord } from '../model.ts';
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
  /** Columns of the primary key; an insert with an existing key replaces every other column. */
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
