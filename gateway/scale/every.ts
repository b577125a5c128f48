import type { Clock, Timer } from '../../shared/clock.ts';

/**
 * Runs `work` every `ms` (the first time after `ms`), each run after the previous one finished,
 * so that a slow Redis or PostgreSQL never stacks runs up. Returns the function that stops it.
 */
export function every(clock: Clock, ms: number, work: () => Promise<void> | void): () => void {
  let stopped = false;
  let timer: Timer | undefined;
  const tick = () => {
    if (stopped) return;
    Promise.resolve()
      .then(work)
      .catch(() => {
        // Each caller reports its own failures; the next run retries.
      })
      .finally(() => {
        if (!stopped) timer = clock.after(ms, tick);
      });
  };
  timer = clock.after(ms, tick);
  return () => {
    stopped = true;
    timer?.cancel();
  };
}
