import type pg from 'pg';
import { HOLDING, type Rollout } from '../rollouts/model.ts';
import type { OwnedRollout } from '../rollouts/peers.ts';
import { rowValues, selectFrom } from './postgres-statements.ts';
import type { RolloutRow } from './rollout-rows.ts';
import { ROLLOUTS } from './tables.ts';

// Rollouts on the shared store, owned by one gateway each (docs/scale.md): the gateway that
// started a rollout owns it, steps it and alone writes its row; every write names the version it
// is based on, and the row's owner, so that a gateway that lost the rollout (taken over by a
// survivor while this one was thought dead) can never overwrite it. A survivor takes over the
// rollouts of gateways that stopped heartbeating, in one UPDATE: one survivor per rollout, as for
// rounds. Written directly, not through the write-behind queue: every step of a rollout is
// committed before the commands it sends leave anyway (write-ahead), and its outcome (written, or
// refused because another gateway owns it now) decides what this gateway does next.

/** Rows that still need an engine: not ended, or commands in flight (model.ts needsEngine). */
const LIVE = `(phase NOT IN ('cancelled', 'rolled-back', 'committed') OR (state::json -> 'inflight')::text <> '{}')`;

/** Any constant: the advisory lock that makes gateways starting rollouts take turns. */
const START_LOCK = 0x76_69_67_72_6f; // "vigro"

type OwnedRow = RolloutRow & { owner: string | null; version: number };

const SELECT = selectFrom('rollouts', [...ROLLOUTS.columns, 'owner', 'version']);

export interface PgRolloutsDeps {
  readonly pool: pg.Pool;
  readonly gatewayId: string;
  /** Resolves once queued writes to `rollouts` (a gateway on PostgreSQL without Redis) are committed. */
  readonly visible: () => Promise<void>;
  readonly transaction: <T>(fn: (client: pg.PoolClient) => Promise<T>) => Promise<T>;
}

export class PgRollouts {
  /** The version of each row this gateway owns, as it last wrote or took it. */
  private readonly versions = new Map<string, number>();

  constructor(private readonly d: PgRolloutsDeps) {}

  private async select(where: string, values: unknown[]): Promise<OwnedRow[]> {
    await this.d.visible();
    return (
      await this.d.pool.query<OwnedRow>(
        `${SELECT} WHERE ${where} ORDER BY updated_at DESC, id COLLATE "C" DESC`,
        values,
      )
    ).rows;
  }

  private owned(rows: readonly OwnedRow[]): Rollout[] {
    for (const row of rows) this.versions.set(row.id, row.version);
    return rows.map(ROLLOUTS.fromRow);
  }

  async own(): Promise<Rollout[]> {
    return this.owned(await this.select(`owner = $1 AND ${LIVE}`, [this.d.gatewayId]));
  }

  async live(): Promise<OwnedRollout[]> {
    return (await this.select(LIVE, [])).map((row) => ({ rollout: ROLLOUTS.fromRow(row), owner: row.owner }));
  }

  async row(id: string): Promise<OwnedRollout | undefined> {
    const [row] = await this.select('id = $1', [id]);
    return row && { rollout: ROLLOUTS.fromRow(row), owner: row.owner };
  }

  async create(r: Rollout, check: (holding: readonly Rollout[]) => void): Promise<void> {
    await this.d.visible();
    const row = ROLLOUTS.toRow(r);
    await this.d.transaction(async (client) => {
      // Two gateways starting rollouts on one swarm at once: the second sees the first here.
      await client.query('SELECT pg_advisory_xact_lock($1)', [START_LOCK]);
      const holding = await client.query<OwnedRow>(`${SELECT} WHERE phase = ANY($1)`, [[...HOLDING]]);
      check(holding.rows.map(ROLLOUTS.fromRow));
      await client.query(
        `INSERT INTO rollouts (${ROLLOUTS.columns.join(', ')}, owner, version) VALUES ($1, $2, $3, $4, $5, $6, 1)`,
        [...rowValues(row, ROLLOUTS.columns), this.d.gatewayId],
      );
    });
    this.versions.set(r.spec.id, 1);
  }

  async save(r: Rollout): Promise<boolean> {
    const id = r.spec.id;
    const version = this.versions.get(id);
    if (version === undefined) return false;
    const row = ROLLOUTS.toRow(r);
    const { rows } = await this.d.pool.query<{ version: number }>(
      `UPDATE rollouts SET swarm = $2, phase = $3, state = $4, updated_at = $5, version = version + 1
        WHERE id = $1 AND owner = $6 AND version = $7 RETURNING version`,
      [...rowValues(row, ROLLOUTS.columns), this.d.gatewayId, version],
    );
    if (rows[0] === undefined) {
      this.versions.delete(id);
      return false;
    }
    this.versions.set(id, rows[0].version);
    return true;
  }

  /** Takes over the live rollouts of gateways not seen within `leaseMs`, and those nobody owns. */
  async adopt(leaseMs: number): Promise<Rollout[]> {
    await this.d.visible();
    const rows = await this.d.transaction(async (client) => {
      // As for rounds: locking the dead gateways' rows orders this against their heartbeats.
      const dead = (
        await client.query<{ id: string }>(
          `SELECT id FROM gateways WHERE id <> $1 AND seen_at <= now() - make_interval(secs => $2::float8 / 1000)
           FOR UPDATE`,
          [this.d.gatewayId, leaseMs],
        )
      ).rows.map((g) => g.id);
      return (
        await client.query<OwnedRow>(
          `UPDATE rollouts SET owner = $1, version = version + 1
            WHERE (owner IS NULL OR owner = ANY($2)) AND ${LIVE}
            RETURNING ${ROLLOUTS.columns.join(', ')}, owner, version`,
          [this.d.gatewayId, dead],
        )
      ).rows;
    });
    return this.owned(rows);
  }
}
