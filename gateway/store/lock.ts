import { linkSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';

// One gateway per posture store. Two gateways on one SQLite file would each believe they own every
// device's live state (timers, rounds in flight, the retained posture notices), and SQLite's own
// locking only serialises their writes. The lock is a file created exclusively beside the
// database (`vigil.db.lock` in the gateway directory), naming the holder's pid; a second gateway
// finds it and refuses with that pid. A lock left by a process that is gone (killed, crashed) is
// taken over. On Linux the holder is also identified by its process start time, so that a pid
// reused by another process is not taken for the holder.

export interface LockHolder {
  readonly pid: number;
  /** The process's start time in clock ticks since boot (/proc/PID/stat), where there is /proc. */
  readonly start?: string;
  /** When the lock was taken, Unix ms. */
  readonly since: number;
}

export class GatewayLockedError extends Error {
  constructor(
    readonly path: string,
    readonly holder: LockHolder,
  ) {
    super(
      `${path}: the posture store is in use by the gateway with pid ${holder.pid} ` +
        `(since ${new Date(holder.since).toISOString()}); stop that gateway first, or give this one its own directory`,
    );
    this.name = 'GatewayLockedError';
  }
}

export interface StoreLock {
  readonly path: string;
  /** Removes the lock if it is still ours. */
  release(): void;
}

/** State and start time of a process (fields 3 and 22 of /proc/PID/stat), where there is /proc. */
function procStat(pid: number): { readonly state: string; readonly start: string } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0]!, start: fields[19]! };
  } catch {
    return undefined;
  }
}

/** Whether a process with this pid exists (one we may not signal exists too). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The holder still runs: its pid exists, is not a zombie, and (where known) started when it did. */
function alive(holder: LockHolder): boolean {
  if (!pidAlive(holder.pid)) return false;
  const stat = procStat(holder.pid);
  if (stat === undefined) return holder.start === undefined;
  return stat.state !== 'Z' && (holder.start === undefined || stat.start === holder.start);
}

function parseHolder(text: string): LockHolder | undefined {
  try {
    const j = JSON.parse(text) as Partial<LockHolder>;
    return Number.isInteger(j.pid) && typeof j.since === 'number'
      ? { pid: j.pid!, since: j.since, ...(typeof j.start === 'string' && { start: j.start }) }
      : undefined;
  } catch {
    return undefined;
  }
}

const readText = (path: string): string | undefined => {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
};

/**
 * Takes the lock of the store at `database`, or throws GatewayLockedError naming the live holder.
 * `now` is the time written into the lock.
 */
export function acquireStoreLock(database: string, now: number): StoreLock {
  const path = `${database}.lock`;
  const start = procStat(process.pid)?.start;
  const mine = `${JSON.stringify({ pid: process.pid, ...(start && { start }), since: now })}\n`;
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      writeFileSync(path, mine, { flag: 'wx', mode: 0o644 });
      return {
        path,
        release: () => {
          if (readText(path) === mine) unlinkSync(path);
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const found = readText(path);
    if (found === undefined) continue; // released meanwhile: try again
    const holder = parseHolder(found);
    if (holder && alive(holder)) throw new GatewayLockedError(path, holder);
    takeOver(path, found);
  }
  throw new Error(`${path}: could not take the lock (it keeps changing hands); try again`);
}

/**
 * Removes a lock judged stale (`stale` is the content judged), without removing a lock another
 * gateway took meanwhile: the file is first moved aside (atomic), then checked; a live lock moved
 * by mistake is put back (link fails if yet another lock appeared, which then stands).
 */
function takeOver(path: string, stale: string): void {
  const aside = `${path}.${process.pid}.stale`;
  try {
    renameSync(path, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  if (readText(aside) !== stale) {
    try {
      linkSync(aside, path);
    } catch {
      // Another lock was created meanwhile; it stands.
    }
  }
  unlinkSync(aside);
}
