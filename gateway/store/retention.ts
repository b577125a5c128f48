import type { Logger } from 'pino';
import type { Store } from './store.ts';

// Rounds keep their evidence (about 1 KB each) so that an operator can re-verify them; at a
// periodic interval that is hundreds of MB a day for a large fleet. Settled rounds older than the
// policy's retention are deleted in small steps, each its own transaction, yielding between steps
// so that a large backlog never stalls the broker.

const STEP = 2000;
const DAY_MS = 24 * 60 * 60 * 1000;

export interface Retention {
  /** Prunes now; resolves with how many rounds were deleted. */
  run(): Promise<number>;
  close(): void;
}

export function startRetention(
  store: Pick<Store, 'pruneRounds'>,
  roundsDays: () => number,
  log: Logger,
  everyMs = 10 * 60 * 1000,
): Retention {
  let closed = false;
  let running: Promise<number> | undefined;
  const prune = async (): Promise<number> => {
    const before = Date.now() - roundsDays() * DAY_MS;
    let total = 0;
    for (;;) {
      if (closed) break;
      const n = await store.pruneRounds(before, STEP);
      total += n;
      if (n < STEP) break;
      await new Promise((resolve) => setImmediate(resolve));
    }
    if (total > 0) log.info({ deleted: total, olderThanDays: roundsDays() }, 'rounds pruned (retention)');
    return total;
  };
  const run = () => {
    running ??= prune().finally(() => {
      running = undefined;
    });
    return running;
  };
  const tick = () =>
    void run().catch((err: Error) => log.error({ err: err.message }, 'pruning rounds failed; will retry'));
  const timer = setInterval(tick, everyMs);
  timer.unref();
  setImmediate(tick);
  return {
    run,
    close() {
      closed = true;
      clearInterval(timer);
    },
  };
}
