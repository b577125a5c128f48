// Anti-rollback at the gateway (PROTOCOL.md §6.1, Uptane's release counter): once a swarm has
// committed a release, its `seq` is the swarm's floor for that software, and a rollout to a
// release at or below it is refused unless the operator forces it (knowingly going back, e.g. to
// the last good release after a bad one was committed). Devices apply their own floor whatever
// the gateway decides: a forced rollout below a device's floor still fails there with
// `rollback-refused`.

export type FloorDecision =
  | { readonly ok: true; readonly forced: boolean }
  | { readonly ok: false; readonly code: 'rollback-refused'; readonly detail: string };

export interface FloorCheck {
  readonly name: string;
  readonly seq: number;
  /** The seq the swarm committed for `name`; undefined when it never committed one. */
  readonly floor: number | undefined;
  readonly force: boolean;
}

export function checkFloor(c: FloorCheck): FloorDecision {
  if (c.floor === undefined || c.seq > c.floor) return { ok: true, forced: false };
  if (c.force) return { ok: true, forced: true };
  return {
    ok: false,
    code: 'rollback-refused',
    detail: `${c.name} seq ${c.seq} is not above the swarm's committed floor ${c.floor}: pack a release with a higher --seq, or force the rollout to go back on purpose`,
  };
}
