import type { CborMap } from '../../shared/cbor/value.ts';
import type { Quota, RolloutSpec } from './model.ts';

// What an operator asks of the rollout engine, as the API validated it. Its own file so that the
// API, the dashboard, the engine's parts and another gateway's answer to a forwarded request name
// them without importing the engine.

/** How long an operate token stays valid after the operation's time. */
export const OPERATE_VALIDITY_MS = 5 * 60_000;

/** A rollout as an operator asks for it (validated by the API). */
export interface StartRequest {
  /** `KEY=VALUE`: the devices carrying this label now are the members. */
  readonly swarm: string;
  readonly release: { readonly name: string; readonly version: string };
  readonly waves: readonly Quota[];
  readonly successPercent: number;
  readonly abort: RolloutSpec['abort'];
  readonly barrier: RolloutSpec['barrier'];
  readonly required: readonly string[];
  readonly timeouts: RolloutSpec['timeouts'];
  /** Roll to a release at or below the swarm's committed floor on purpose. */
  readonly force: boolean;
}

export interface OperateRequest {
  readonly name: string;
  readonly args: CborMap;
  /** When the members run it (Unix ms); default now. */
  readonly at?: number;
}

export const OPERATOR_ACTIONS = ['pause', 'resume', 'cancel', 'rollback', 'commit'] as const;
export type OperatorAction = (typeof OPERATOR_ACTIONS)[number];
