// Servers a test starts as processes of their own (PostgreSQL, Redis, HAProxy, gateways) must
// not outlive the test process, however it ends: normally ('exit'), or killed by a CI timeout
// or Ctrl-C (SIGTERM, SIGINT), where no 'exit' listener runs. Each registers a synchronous stop.

const stops = new Set<() => void>();
let hooked = false;

function runAll(): void {
  for (const stop of [...stops]) {
    try {
      stop();
    } catch {
      // already gone
    }
  }
  stops.clear();
}

/** Runs `stop` when the process ends, unless the returned function is called first. */
export function onProcessEnd(stop: () => void): () => void {
  stops.add(stop);
  if (!hooked) {
    hooked = true;
    process.once('exit', runAll);
    for (const [signal, code] of [
      ['SIGTERM', 143],
      ['SIGINT', 130],
    ] as const) {
      // Ended as the signal meant to, through exit: the other 'exit' hooks (temp dirs) run too.
      process.once(signal, () => process.exit(code));
    }
  }
  return () => stops.delete(stop);
}
