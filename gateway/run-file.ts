import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pidAlive } from './store/lock.ts';

// DIR/run.json: where a running gateway actually listens. The configured ports can be overridden
// at start (`--port`, `--api-port`, 0 for any free port), so operator commands read this first.

export interface RunInfo {
  readonly pid: number;
  readonly mqttPort: number;
  readonly apiHost: string;
  readonly apiPort: number;
  readonly startedAt: number;
}

const runFile = (dir: string) => join(dir, 'run.json');

export function writeRunFile(dir: string, info: RunInfo): void {
  writeFileSync(runFile(dir), `${JSON.stringify(info)}\n`);
}

export function removeRunFile(dir: string, pid: number): void {
  // Only our own: a second gateway started on the same directory must not lose its file.
  if (readRunFile(dir)?.pid === pid) rmSync(runFile(dir), { force: true });
}

/** The running gateway's addresses; undefined when none runs (a stale file from a crash is ignored). */
export function readRunFile(dir: string): RunInfo | undefined {
  let info: RunInfo;
  try {
    info = JSON.parse(readFileSync(runFile(dir), 'utf8')) as RunInfo;
  } catch {
    return undefined;
  }
  return Number.isInteger(info.pid) && pidAlive(info.pid) ? info : undefined;
}
