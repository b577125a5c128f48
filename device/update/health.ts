import { setTimeout as sleep } from 'node:timers/promises';
import { type CommandResult, runCommand } from './run-command.ts';

// Whether a freshly switched release is healthy (RAUC's mark-good, decided by the device): its
// probe runs every `intervalMs` for `windowMs` and once more at the end. Failures before the
// first success are the software starting up; once it has answered, it must keep answering, and
// it must answer at the end. Without a probe, a release is healthy when its restart succeeded.

/** The verdict over the probe results of one window, in order. */
export function judgeHealth(results: readonly boolean[]): boolean {
  const first = results.indexOf(true);
  return first >= 0 && results.slice(first).every(Boolean) && results[results.length - 1] === true;
}

export interface HealthOptions {
  readonly probe?: readonly string[];
  readonly windowMs: number;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

export async function watchHealth(o: HealthOptions): Promise<{ ok: boolean; detail: string }> {
  if (o.probe === undefined) {
    await sleep(o.windowMs, undefined, o.signal ? { signal: o.signal } : {});
    return { ok: true, detail: `no health probe configured; restarted and ran ${o.windowMs} ms` };
  }
  const started = Date.now();
  const results: boolean[] = [];
  let last: CommandResult | undefined;
  for (;;) {
    last = await runCommand(o.probe, { timeoutMs: o.timeoutMs });
    results.push(last.ok);
    // Up once and down again: no need to wait for the end of the window.
    if (!last.ok && results.includes(true)) break;
    const left = o.windowMs - (Date.now() - started);
    if (left <= 0) break;
    await sleep(Math.min(o.intervalMs, left), undefined, o.signal ? { signal: o.signal } : {});
  }
  const ok = judgeHealth(results);
  const passed = results.filter(Boolean).length;
  return {
    ok,
    detail: `${passed} of ${results.length} probes passed over ${o.windowMs} ms${ok ? '' : `; last: ${last.detail}`}`,
  };
}
