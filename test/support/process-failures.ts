// A failure that escapes a test as a process event (a rejection nobody awaited, an exception
// thrown from a callback) fails no assertion where it happens, and by default ends the process.
// Collected instead, it can be asserted empty at the end of the test that provoked it.

export interface ProcessFailures {
  /** What arrived so far, in order. */
  readonly caught: unknown[];
  /** Stops collecting. */
  stop(): void;
}

export function collectProcessFailures(opts: { uncaughtExceptions?: boolean } = {}): ProcessFailures {
  const caught: unknown[] = [];
  const onFailure = (e: unknown) => caught.push(e);
  process.on('unhandledRejection', onFailure);
  if (opts.uncaughtExceptions) process.on('uncaughtException', onFailure);
  return {
    caught,
    stop() {
      process.off('unhandledRejection', onFailure);
      process.off('uncaughtException', onFailure);
    },
  };
}
