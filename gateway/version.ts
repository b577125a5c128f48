import { readFileSync } from 'node:fs';

// One version for logs, EARs and `--version`, read from package.json wherever the code runs
// (source through tsx, or the built copy in dist/).
function findVersion(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'vigil' && pkg.version) return pkg.version;
    } catch {
      // not at this depth
    }
  }
  return '0.0.0';
}

export const VERSION = findVersion();
