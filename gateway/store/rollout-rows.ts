import type { Rollout } from '../rollouts/model.ts';

// Rollouts and swarm floors ↔ rows (tables.ts ROLLOUTS, SWARM_FLOORS). A rollout is stored whole
// as JSON after every step (its shape is the state machine's, gateway/rollouts/model.ts), with the
// columns an engine filters on beside it.

export interface RolloutRow {
  id: string;
  swarm: string;
  phase: string;
  state: string;
  updated_at: number;
}

export function rolloutToRow(r: Rollout): RolloutRow {
  return {
    id: r.spec.id,
    swarm: r.spec.swarm,
    phase: r.phase,
    state: JSON.stringify(r),
    updated_at: r.updatedAt,
  };
}

export function rolloutFromRow(row: RolloutRow): Rollout {
  return JSON.parse(row.state) as Rollout;
}

/** The release a swarm committed for a software: no rollout goes to a seq at or below it unforced. */
export interface SwarmFloor {
  readonly swarm: string;
  readonly name: string;
  readonly seq: number;
  /** Hex digest of the committed release. */
  readonly digest: string;
  /** The rollout that committed it. */
  readonly rollout: string;
  readonly committedAt: number;
}

export interface SwarmFloorRow {
  swarm: string;
  name: string;
  seq: number;
  digest: string;
  rollout: string;
  committed_at: number;
}

export function swarmFloorToRow(f: SwarmFloor): SwarmFloorRow {
  return {
    swarm: f.swarm,
    name: f.name,
    seq: f.seq,
    digest: f.digest,
    rollout: f.rollout,
    committed_at: f.committedAt,
  };
}

export function swarmFloorFromRow(row: SwarmFloorRow): SwarmFloor {
  return {
    swarm: row.swarm,
    name: row.name,
    seq: row.seq,
    digest: row.digest,
    rollout: row.rollout,
    committedAt: row.committed_at,
  };
}
