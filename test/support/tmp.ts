import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const made = new Set<string>();
let hooked = false;

/** A fresh directory under the OS temp dir, removed by `removeDir` or, at the latest, on exit. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `vigil-${prefix}-`));
  made.add(dir);
  if (!hooked) {
    hooked = true;
    process.once('exit', () => {
      for (const d of made) rmSync(d, { recursive: true, force: true });
    });
  }
  return dir;
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  made.delete(dir);
}
