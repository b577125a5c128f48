import type { Quota, RolloutSpec } from './model.ts';

/** A quota's number of members out of `total`; a share is rounded up, never past the total. */
export function resolve(q: Quota, total: number): number {
  const n = q.kind === 'count' ? q.n : Math.ceil((q.percent / 100) * total);
  return Math.max(0, Math.min(total, n));
}

/**
 * The members each wave adds, from cumulative wave sizes: `1, 50%, 100%` over ten members is
 * [1, 4, 5]. The last wave always reaches the whole swarm; an empty wave is dropped.
 */
export function waveSizes(waves: readonly Quota[], total: number): number[] {
  const sizes: number[] = [];
  let reached = 0;
  for (const w of [...waves, { kind: 'share' as const, percent: 100 }]) {
    const upTo = Math.max(reached, resolve(w, total));
    if (upTo > reached) sizes.push(upTo - reached);
    reached = upTo;
  }
  return sizes;
}

/** Parses `1,50%,100%` (a count or a percentage each) into quotas; throws with the bad part. */
export function parseQuotas(text: string, what: string): Quota[] {
  return text.split(',').map((part) => parseQuota(part.trim(), what));
}

export function parseQuota(part: string, what: string): Quota {
  const share = /^(\d{1,3}(?:\.\d+)?)%$/.exec(part);
  if (share) {
    const percent = Number(share[1]);
    if (percent > 0 && percent <= 100) return { kind: 'share', percent };
  } else if (/^\d{1,6}$/.test(part) && Number(part) > 0) return { kind: 'count', n: Number(part) };
  throw new RangeError(`${what}: ${JSON.stringify(part)} is neither a count (1, 5) nor a share (10%, 100%)`);
}

/** Members the barrier needs converged, fresh and good. */
export function barrierSize(spec: RolloutSpec, total: number): number {
  return spec.barrier.kind === 'all' ? total : resolve(spec.barrier, total);
}
