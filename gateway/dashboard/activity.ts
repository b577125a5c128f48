import type { RoundView } from '../api/views.ts';
import type { EventFeed } from '../events.ts';

// Rounds settled per minute, and how many of them failed, for the last hour: what the dashboard's
// chart starts from before the live stream adds to it. Counted from the event feed since the
// gateway started (the store keeps rounds, not a time series; an hour of minutes is 60 numbers).

export interface ActivityView {
  readonly bucketMs: number;
  /** Oldest first; `at` is the start of each bucket (Unix ms). */
  readonly buckets: readonly { readonly at: number; readonly rounds: number; readonly failures: number }[];
}

/** A settled round that did not end affirming or warning: contraindicated, none, stale, abandoned. */
export function roundFailed(r: Pick<RoundView, 'state' | 'status'>): boolean {
  return !(r.state === 'appraised' && (r.status === 'affirming' || r.status === 'warning'));
}

export class Activity {
  private readonly counts = new Map<number, { rounds: number; failures: number }>();

  constructor(
    readonly bucketMs = 60_000,
    readonly keep = 60,
  ) {}

  record(at: number, failed: boolean): void {
    const bucket = Math.floor(at / this.bucketMs);
    const c = this.counts.get(bucket) ?? { rounds: 0, failures: 0 };
    c.rounds++;
    if (failed) c.failures++;
    this.counts.set(bucket, c);
    for (const b of this.counts.keys()) if (b <= bucket - this.keep) this.counts.delete(b);
  }

  view(now: number): ActivityView {
    const last = Math.floor(now / this.bucketMs);
    const buckets = [];
    for (let b = last - this.keep + 1; b <= last; b++) {
      const c = this.counts.get(b);
      buckets.push({ at: b * this.bucketMs, rounds: c?.rounds ?? 0, failures: c?.failures ?? 0 });
    }
    return { bucketMs: this.bucketMs, buckets };
  }

  /** Counts every round the feed reports settled; returns the unsubscribe function. */
  follow(feed: EventFeed, now: () => number): () => void {
    return feed.subscribe((e) => {
      if (e.kind === 'round' && e.round.state !== 'pending')
        this.record(e.round.appraisedAt ?? now(), roundFailed(e.round));
    });
  }
}
