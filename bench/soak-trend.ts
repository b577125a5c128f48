// What the soak's samples of the gateway process say about leaks: per gateway process (a restart
// starts a new one), the least-squares slope of RSS, of open descriptors and of the live JS heap
// after a full collection, each after a warm-up. A leak shows as a slope that does not go to zero
// as the run gets longer; start-up growth (the fleet connecting, caches filling) is what the
// warm-up leaves out. RSS also carries garbage not yet collected and heap V8 keeps for reuse, so
// over minutes it moves by tens of MB either way; the live heap after a full collection does not.

export interface Sample {
  /** Seconds since the soak started. */
  readonly t: number;
  readonly rssMb: number;
  readonly fds: number;
  /** Attested device connections the gateway holds. */
  readonly attested: number;
  /** Which gateway process: 0 before the restart, 1 after. */
  readonly segment: number;
  /** The JS heap in use right after a full collection, MB: taken on some samples only. */
  readonly liveHeapMb?: number;
}

export interface Line {
  /** Change per unit of x. */
  readonly slope: number;
  readonly intercept: number;
}

/** Ordinary least squares of y on x; a flat line through the mean when x does not vary. */
export function leastSquares(points: readonly { readonly x: number; readonly y: number }[]): Line {
  const n = points.length;
  if (n === 0) return { slope: 0, intercept: 0 };
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (const p of points) {
    sxy += (p.x - mx) * (p.y - my);
    sxx += (p.x - mx) ** 2;
  }
  const slope = sxx === 0 ? 0 : sxy / sxx;
  return { slope, intercept: my - slope * mx };
}

export interface SegmentTrend {
  readonly segment: number;
  /** The samples fitted: after the warm-up, seconds since the start. */
  readonly from: number;
  readonly to: number;
  readonly samples: number;
  /** Fitted over minutes: MB per minute, descriptors per minute. */
  readonly rss: Line;
  readonly fds: Line;
  /** MB per minute; undefined when fewer than three samples after the warm-up took the live heap. */
  readonly liveHeap: Line | undefined;
}

/**
 * The trend of each gateway process, leaving out the first `warmup` share of its time (at
 * least `minWarmupS`): a segment too short to keep three samples after that has no trend.
 */
export function segmentTrends(samples: readonly Sample[], warmup = 0.25, minWarmupS = 20): SegmentTrend[] {
  const segments = [...new Set(samples.map((s) => s.segment))].sort((a, b) => a - b);
  const trends: SegmentTrend[] = [];
  for (const segment of segments) {
    const own = samples.filter((s) => s.segment === segment);
    const start = own[0]!.t;
    const end = own.at(-1)!.t;
    const cut = start + Math.max(minWarmupS, (end - start) * warmup);
    const fitted = own.filter((s) => s.t >= cut);
    if (fitted.length < 3) continue;
    const minutes = (of: readonly Sample[], pick: (s: Sample) => number) =>
      of.map((s) => ({ x: s.t / 60, y: pick(s) }));
    const heaps = fitted.filter((s) => s.liveHeapMb !== undefined);
    trends.push({
      segment,
      from: fitted[0]!.t,
      to: fitted.at(-1)!.t,
      samples: fitted.length,
      rss: leastSquares(minutes(fitted, (s) => s.rssMb)),
      fds: leastSquares(minutes(fitted, (s) => s.fds)),
      liveHeap: heaps.length >= 3 ? leastSquares(minutes(heaps, (s) => s.liveHeapMb!)) : undefined,
    });
  }
  return trends;
}
