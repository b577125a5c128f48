import type Database from 'better-sqlite3';

// Versioned schema of the SQLite store (tables.ts names what each table holds). The version lives in `PRAGMA user_version`; each
// step runs in its own transaction together with the bump of user_version, so a crash leaves the
// database at a whole version. Steps are append-only: never edit a released step, add one.
//
// Encoding choices (the same in every step):
// - byte fields are BLOBs;
// - the TPM clock is a UINT64 and SQLite's INTEGER is a signed 64-bit value, so it is stored as
//   decimal TEXT: exact over the whole range, readable in the sqlite3 shell, and never compared in
//   SQL;
// - lists and maps (labels, result codes, PCR selections, log offsets) are JSON text;
// - times are Unix ms INTEGERs (exact in a JS number until the year 287,396).

export interface Migration {
  readonly version: number;
  readonly description: string;
  readonly sql: string;
}

/** PRAGMA application_id of a Vigil store ('VIGL', set by migration 4): how restore recognises one. */
export const APPLICATION_ID = 0x5649474c;

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'devices, rounds, posture events, allowlist, releases, batches',
    sql: `
      CREATE TABLE devices (
        id TEXT PRIMARY KEY,
        ek_hash TEXT NOT NULL UNIQUE,
        ek_public BLOB NOT NULL,
        ek_cert BLOB,
        ak_public BLOB,
        ak_name BLOB,
        ak_enrolled_at INTEGER,
        attester TEXT NOT NULL,
        agent TEXT NOT NULL,
        sw_pcr INTEGER NOT NULL,
        labels TEXT NOT NULL,
        posture TEXT NOT NULL,
        reasons TEXT NOT NULL,
        expires INTEGER,
        clock TEXT,
        reset_count INTEGER,
        restart_count INTEGER,
        sw_log TEXT,
        first_seen INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        last_round TEXT
      ) STRICT;

      CREATE TABLE rounds (
        id TEXT PRIMARY KEY,
        device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
        batch_id TEXT,
        reason TEXT NOT NULL,
        nonce BLOB NOT NULL,
        pcrs TEXT NOT NULL,
        logs TEXT NOT NULL,
        activate INTEGER NOT NULL,
        issued_at INTEGER NOT NULL,
        deadline_at INTEGER NOT NULL,
        state TEXT NOT NULL,
        status TEXT,
        codes TEXT NOT NULL,
        detail TEXT,
        exporter BLOB,
        body BLOB,
        attest BLOB,
        sig BLOB,
        appraised_at INTEGER
      ) STRICT;
      CREATE INDEX rounds_by_device ON rounds(device_id, issued_at);
      CREATE INDEX rounds_by_batch ON rounds(batch_id) WHERE batch_id IS NOT NULL;
      CREATE INDEX rounds_pending ON rounds(deadline_at) WHERE state = 'pending';

      CREATE TABLE posture_events (
        seq INTEGER PRIMARY KEY,
        device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
        at INTEGER NOT NULL,
        from_posture TEXT NOT NULL,
        to_posture TEXT NOT NULL,
        reasons TEXT NOT NULL,
        round TEXT
      ) STRICT;
      CREATE INDEX posture_events_by_device ON posture_events(device_id, seq);

      CREATE TABLE allowlist (
        entry TEXT PRIMARY KEY,
        note TEXT,
        admitted_at INTEGER NOT NULL
      ) STRICT;

      CREATE TABLE releases (
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        digest TEXT NOT NULL,
        added_at INTEGER NOT NULL,
        PRIMARY KEY (name, version)
      ) STRICT;

      CREATE TABLE batches (
        id TEXT PRIMARY KEY,
        selector TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        deadline_at INTEGER NOT NULL,
        rounds TEXT NOT NULL
      ) STRICT;
    `,
  },
  {
    version: 2,
    description: 'index of settled rounds by time, for retention',
    sql: `
      CREATE INDEX rounds_settled_by_time ON rounds(issued_at) WHERE state <> 'pending';
    `,
  },
  {
    version: 3,
    description: "a round's EAR; a batch's unreachable devices in their own column",
    sql: `
      ALTER TABLE rounds ADD COLUMN ear BLOB;
      ALTER TABLE batches ADD COLUMN unreachable TEXT NOT NULL DEFAULT '[]';
      -- Batches written before this step kept {selector, unreachable} together in selector.
      UPDATE batches
         SET unreachable = json_extract(selector, '$.unreachable'),
             selector = json_extract(selector, '$.selector')
       WHERE json_valid(selector)
         AND json_type(selector, '$.unreachable') = 'array'
         AND json_type(selector, '$.selector') = 'object';
    `,
  },
  {
    // Releases imported from signed bundles (gateway/releases/import.ts); the artifact itself is a
    // file under the gateway directory, content-addressed by its SHA-256.
    version: 4,
    description: 'signed release manifests and their artifacts',
    sql: `
      CREATE TABLE release_manifests (
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        seq INTEGER NOT NULL,
        digest TEXT NOT NULL,
        kid TEXT NOT NULL,
        manifest BLOB NOT NULL,
        artifact_sha256 TEXT NOT NULL,
        artifact_size INTEGER NOT NULL,
        artifact_path TEXT NOT NULL,
        imported_at INTEGER NOT NULL,
        PRIMARY KEY (name, seq),
        UNIQUE (name, version)
      ) STRICT;
    `,
  },
  {
    version: 5,
    description:
      "a round's AK (what re-verifies its quote after a re-enrolment); the file marked as a Vigil store",
    sql: `
      ALTER TABLE rounds ADD COLUMN ak_public BLOB;
      PRAGMA application_id = ${APPLICATION_ID};
    `,
  },
  {
    // MCU sub-attesters (docs/protocol.md §8): admitted identities, optionally bound to one
    // device, and what each round's appraisal concluded about each MCU (JSON, by slot).
    version: 6,
    description: 'MCU admissions; the MCU results of a round',
    sql: `
      CREATE TABLE mcu_admissions (
        identity TEXT PRIMARY KEY,
        device_id TEXT,
        note TEXT,
        admitted_at INTEGER NOT NULL
      ) STRICT;
      ALTER TABLE rounds ADD COLUMN mcus TEXT;
    `,
  },
  {
    // The rollout engine (gateway/rollouts/): each rollout's whole state after every step, and the
    // release each swarm committed per software (its anti-rollback floor).
    version: 7,
    description: 'rollouts and swarm floors',
    sql: `
      CREATE TABLE rollouts (
        id TEXT PRIMARY KEY,
        swarm TEXT NOT NULL,
        phase TEXT NOT NULL,
        state TEXT NOT NULL,
        updated_at INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX rollouts_by_swarm ON rollouts(swarm, updated_at);

      CREATE TABLE swarm_floors (
        swarm TEXT NOT NULL,
        name TEXT NOT NULL,
        seq INTEGER NOT NULL,
        digest TEXT NOT NULL,
        rollout TEXT NOT NULL,
        committed_at INTEGER NOT NULL,
        PRIMARY KEY (swarm, name)
      ) STRICT;
    `,
  },
  {
    version: 8,
    description: "the wall time of a device's recorded TPM clock, to judge how far the clock may have run",
    sql: `
      ALTER TABLE devices ADD COLUMN clock_at INTEGER;
    `,
  },
];

export const SCHEMA_VERSION = MIGRATIONS.length;

export class StoreVersionError extends Error {
  constructor(
    readonly file: string,
    readonly found: number,
    readonly supported: number,
  ) {
    super(
      `${file}: posture store schema version ${found} is newer than this gateway supports (${supported}); ` +
        'it was written by a newer Vigil: run that version, or restore a backup made for this one',
    );
    this.name = 'StoreVersionError';
  }
}

/** Bring the database to SCHEMA_VERSION; refuse one from a newer gateway. Returns the steps applied. */
export function migrate(db: Database.Database, file: string, migrations = MIGRATIONS): number[] {
  const latest = migrations.length;
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > latest) throw new StoreVersionError(file, current, latest);
  const applied: number[] = [];
  for (const m of migrations.slice(current)) {
    // Numbered steps must be contiguous, or user_version would lie about what ran.
    if (m.version !== applied.length + current + 1) {
      throw new Error(`migration ${m.version} is out of sequence (expected ${applied.length + current + 1})`);
    }
    db.transaction(() => {
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
    }).immediate();
    applied.push(m.version);
  }
  return applied;
}
