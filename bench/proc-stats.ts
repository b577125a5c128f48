import { readFileSync, writeFileSync } from 'node:fs';

// CPU and memory of a process from /proc, so the bench measures a child from outside without
// trusting it to report on itself.

const TICKS = 100; // USER_HZ on Linux

export interface ProcStats {
  /** user + system CPU seconds since the process started. */
  readonly cpuS: number;
  readonly rssKb: number;
  /** Peak RSS (VmHWM), KB. */
  readonly hwmKb: number;
}

export function procStats(pid: number): ProcStats {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) =>
    Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
  return { cpuS: (utime + stime) / TICKS, rssKb: kb('VmRSS'), hwmKb: kb('VmHWM') };
}

/** Resets VmHWM to the current RSS (writing 5 to clear_refs), so a peak can be measured per phase. */
export function resetPeak(pid: number): void {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
  } catch {
    // Not permitted: the peak then covers the whole life of the process, which is an upper bound.
  }
}
