// Why the rollout engine refused an operator's request, as stable codes (the operator API answers
// with the same code; docs/api.md lists them). Messages say what was wrong and what to do.

export const ROLLOUT_ERRORS = [
  /** No such rollout. */
  'rollout-not-found',
  /** The release named is not imported (or its artifact is missing). */
  'release-not-found',
  /** The swarm has no devices, or a required member is not in it. */
  'no-match',
  /** The swarm, or one of its devices, is held by another rollout. */
  'rollout-conflict',
  /** The release is at or below the swarm's committed floor and `force` was not given. */
  'rollback-refused',
  /** The rollout's state does not allow the action (resume a running one, commit before completion...). */
  'rollout-refused',
  /** An operation was asked while the barrier does not hold. */
  'barrier-not-held',
  /** Several gateways: the gateway that runs the rollout did not answer (dead, or the bus is down). */
  'owner-unreachable',
] as const;

export type RolloutErrorCode = (typeof ROLLOUT_ERRORS)[number];

export class RolloutError extends Error {
  override readonly name = 'RolloutError';
  constructor(
    readonly code: RolloutErrorCode,
    message: string,
    /** For `barrier-not-held`: the members not converged and fresh. */
    readonly missing?: readonly string[],
  ) {
    super(message);
  }
}
