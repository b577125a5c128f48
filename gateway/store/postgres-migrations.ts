import type pg from 'pg';
import { StoreVersionError } from './migrations.ts';

// Versioned schema of the PostgreSQL store (tables.ts names what each table holds; this file says
// how PostgreSQL keeps it). Applied steps are rows of `schema_migrations`; each step runs in its
// own transaction with its row, under an advisory lock, so that gateways starting together
// migrate once and a crash leaves the database at a whole version. Steps are append-only.
//
// Encoding choices (the same in every step):
// - byte fields are BYTEA;
// - times are Unix ms BIGINTs, read back as JS numbers (the pool's int8 parser refuses any value
//   beyond 2^53, which no Unix ms time reaches before the year 287,396);
// - the TPM clock, a UINT64, is NUMERIC(20,0): exact, and read back as the decimal text the
//   row codec expects; resetCount and restartCount are UINT32s, so BIGINT;
// - lists and maps are JSON text, exactly as the row codec writes them (JSONB would reorder keys
//   and refuse \u0000); queries that need JSON operators cast;
// - columns of the engine's own, beyond tables.ts: rounds.owner (the gateway that issued or
//   adopted a round: a restarted gateway re-arms only its own deadlines), rounds.requested (a
//   round asked of whichever gateway holds the device, not issued yet), rounds.seq and
//   posture_events.seq (insertion order), devices.version and devices.written_by (an update names
//   the version it read and is refused when another gateway wrote since), rollouts.owner and
//   rollouts.version (the gateway that steps a rollout, and the version its next write names).

export interface PgMigration {
  readonly version: number;
  readonly description: string;
  readonly sql: string;
}

export const PG_MIGRATIONS: readonly PgMigration[] = [
  {
    version: 1,
    description: 'devices, rounds, posture events, allowlist, releases, batches, gateways',
    sql: `
      CREATE TABLE devices (
        id TEXT PRIMARY KEY,
        ek_hash TEXT NOT NULL UNIQUE,
        ek_public BYTEA NOT NULL,
        ek_cert BYTEA,
        ak_public BYTEA,
        ak_name BYTEA,
        ak_enrolled_at BIGINT,
        attester TEXT NOT NULL,
        agent TEXT NOT NULL,
        sw_pcr INTEGER NOT NULL,
        labels TEXT NOT NULL,
        posture TEXT NOT NULL,
        reasons TEXT NOT NULL,
        expires BIGINT,
        clock NUMERIC(20, 0) CHECK (clock >= 0 AND clock <= 18446744073709551615),
        reset_count BIGINT,
        restart_count BIGINT,
        sw_log TEXT,
        first_seen BIGINT NOT NULL,
        last_seen BIGINT NOT NULL,
        last_round TEXT,
        version BIGINT NOT NULL CHECK (version >= 1),
        written_by TEXT NOT NULL
      );

      CREATE TABLE rounds (
        id TEXT PRIMARY KEY,
        device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
        batch_id TEXT,
        reason TEXT NOT NULL,
        nonce BYTEA NOT NULL,
        pcrs TEXT NOT NULL,
        logs TEXT NOT NULL,
        activate SMALLINT NOT NULL CHECK (activate IN (0, 1)),
        issued_at BIGINT NOT NULL,
        deadline_at BIGINT NOT NULL,
        state TEXT NOT NULL,
        status TEXT,
        codes TEXT NOT NULL,
        detail TEXT,
        exporter BYTEA,
        body BYTEA,
        attest BYTEA,
        sig BYTEA,
        appraised_at BIGINT,
        ear BYTEA,
        seq BIGINT GENERATED ALWAYS AS IDENTITY,
        owner TEXT NOT NULL,
        requested BOOLEAN NOT NULL DEFAULT false,
        CHECK (NOT requested OR state = 'pending')
      );
      CREATE INDEX rounds_by_device ON rounds(device_id, issued_at);
      CREATE INDEX rounds_by_batch ON rounds(batch_id) WHERE batch_id IS NOT NULL;
      CREATE INDEX rounds_pending ON rounds(owner, deadline_at) WHERE state = 'pending';
      CREATE INDEX rounds_requested ON rounds(device_id) WHERE requested;
      CREATE INDEX rounds_settled_by_time ON rounds(issued_at) WHERE state <> 'pending';

      CREATE TABLE posture_events (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
        at BIGINT NOT NULL,
        from_posture TEXT NOT NULL,
        to_posture TEXT NOT NULL,
        reasons TEXT NOT NULL,
        round TEXT,
        -- A commit retried after its acknowledgement was lost must not record an event twice.
        UNIQUE (device_id, at, from_posture, to_posture)
      );
      CREATE INDEX posture_events_by_device ON posture_events(device_id, seq);

      CREATE TABLE allowlist (
        entry TEXT PRIMARY KEY,
        note TEXT,
        admitted_at BIGINT NOT NULL
      );

      CREATE TABLE releases (
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        digest TEXT NOT NULL,
        added_at BIGINT NOT NULL,
        PRIMARY KEY (name, version)
      );

      CREATE TABLE batches (
        id TEXT PRIMARY KEY,
        selector TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        deadline_at BIGINT NOT NULL,
        rounds TEXT NOT NULL,
        unreachable TEXT NOT NULL
      );

      -- The gateways sharing this database, each with the database's own time of its last
      -- heartbeat: one clock for all, whatever the machines' clocks say.
      CREATE TABLE gateways (
        id TEXT PRIMARY KEY,
        started_at TIMESTAMPTZ NOT NULL,
        seen_at TIMESTAMPTZ NOT NULL
      );
    `,
  },
  {
    version: 2,
    description:
      "a round's AK and MCU results; signed release manifests; MCU admissions; rollouts and swarm floors",
    sql: `
      ALTER TABLE rounds ADD COLUMN ak_public BYTEA;
      ALTER TABLE rounds ADD COLUMN mcus TEXT;

      CREATE TABLE release_manifests (
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        seq BIGINT NOT NULL,
        digest TEXT NOT NULL,
        kid TEXT NOT NULL,
        manifest BYTEA NOT NULL,
        artifact_sha256 TEXT NOT NULL,
        artifact_size BIGINT NOT NULL,
        artifact_path TEXT NOT NULL,
        imported_at BIGINT NOT NULL,
        PRIMARY KEY (name, seq),
        UNIQUE (name, version)
      );

      CREATE TABLE mcu_admissions (
        identity TEXT PRIMARY KEY,
        device_id TEXT,
        note TEXT,
        admitted_at BIGINT NOT NULL
      );

      CREATE TABLE rollouts (
        id TEXT PRIMARY KEY,
        swarm TEXT NOT NULL,
        phase TEXT NOT NULL,
        state TEXT NOT NULL,
        updated_at BIGINT NOT NULL
      );
      CREATE INDEX rollouts_by_swarm ON rollouts(swarm, updated_at);

      CREATE TABLE swarm_floors (
        swarm TEXT NOT NULL,
        name TEXT NOT NULL,
        seq BIGINT NOT NULL,
        digest TEXT NOT NULL,
        rollout TEXT NOT NULL,
        committed_at BIGINT NOT NULL,
        PRIMARY KEY (swarm, name)
      );
    `,
  },
  {
    version: 3,
    description: "the wall time of a device's recorded TPM clock, to judge how far the clock may have run",
    sql: `
      ALTER TABLE devices ADD COLUMN clock_at BIGINT;
    `,
  },
  {
    version: 4,
    description: "a rollout's owning gateway and version; release artifacts shared by every gateway",
    sql: `
      -- The gateway that steps a rollout (null: none yet, a row written by a single gateway), and
      -- a version every write of that owner names, so that an owner that lost the rollout to a
      -- survivor can never overwrite what the survivor wrote.
      ALTER TABLE rollouts ADD COLUMN owner TEXT;
      ALTER TABLE rollouts ADD COLUMN version BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1);

      -- Artifacts as imported, in chunks, so that a gateway that did not import a release can
      -- serve it: it copies the artifact to its own directory on first use and checks its SHA-256.
      CREATE TABLE artifacts (
        sha256 TEXT PRIMARY KEY,
        size BIGINT NOT NULL CHECK (size >= 0),
        chunk_size INTEGER NOT NULL CHECK (chunk_size > 0),
        stored_at BIGINT NOT NULL
      );
      CREATE TABLE artifact_chunks (
        sha256 TEXT NOT NULL REFERENCES artifacts(sha256) ON DELETE CASCADE,
        seq INTEGER NOT NULL CHECK (seq >= 0),
        data BYTEA NOT NULL,
        PRIMARY KEY (sha256, seq)
      );
    `,
  },
];

export const PG_SCHEMA_VERSION = PG_MIGRATIONS.length;

/** Any constant: the advisory lock key that serialises migrations of one database. */
const MIGRATION_LOCK = 0x76_69_67_69_6c; // "vigil"

/**
 * Brings the database to PG_SCHEMA_VERSION; refuses one written by a newer gateway. Several
 * gateways may call this at once: the advisory lock lets one migrate while the others wait, then
 * find nothing to do. Returns the steps this call applied.
 */
export async function migratePostgres(
  client: pg.ClientBase,
  where: string,
  migrations: readonly PgMigration[] = PG_MIGRATIONS,
): Promise<number[]> {
  const applied: number[] = [];
  for (;;) {
    await client.query('BEGIN');
    try {
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      // Under the lock: two first starts racing on CREATE TABLE IF NOT EXISTS would collide.
      await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version INTEGER PRIMARY KEY,
        description TEXT NOT NULL,
        applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
      )`);
      const { rows } = await client.query<{ v: number | null }>(
        'SELECT max(version) AS v FROM schema_migrations',
      );
      const current = rows[0]?.v ?? 0;
      if (current > migrations.length) throw new StoreVersionError(where, current, migrations.length);
      const next = migrations[current];
      if (!next) {
        await client.query('COMMIT');
        return applied;
      }
      // Numbered steps must be contiguous, or schema_migrations would lie about what ran.
      if (next.version !== current + 1)
        throw new Error(`migration ${next.version} is out of sequence (expected ${current + 1})`);
      await client.query(next.sql);
      await client.query('INSERT INTO schema_migrations (version, description) VALUES ($1, $2)', [
        next.version,
        next.description,
      ]);
      await client.query('COMMIT');
      applied.push(next.version);
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    }
  }
}
