import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

// What every artefact of one release shares: the version (package.json), a time (the commit's,
// so that a rebuild of the same commit gives the same files), and who the packages name as
// maintainer.

export interface Release {
  readonly root: string;
  readonly version: string;
  /** Unix time: SOURCE_DATE_EPOCH if set, else the HEAD commit's time. */
  readonly time: number;
  readonly maintainer: string;
}

const VERSION = /^[0-9][A-Za-z0-9.+~]*$/;

export function release(root: string): Release {
  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version?: string };
  if (typeof version !== 'string' || !VERSION.test(version)) {
    throw new Error(
      `package.json: version ${JSON.stringify(version)} is not usable as a Debian version (digits first, then letters, digits, . + ~)`,
    );
  }
  const epoch = process.env.SOURCE_DATE_EPOCH;
  let time: number;
  if (epoch !== undefined) {
    time = Number(epoch);
    if (!Number.isSafeInteger(time) || time < 0)
      throw new Error(`SOURCE_DATE_EPOCH=${JSON.stringify(epoch)}: expected Unix seconds`);
  } else {
    try {
      time = Number(
        execFileSync('git', ['log', '-1', '--format=%ct'], { cwd: root, encoding: 'utf8' }).trim(),
      );
    } catch {
      time = Math.floor(Date.now() / 1000);
    }
  }
  const maintainer = process.env.VIGIL_MAINTAINER ?? 'Vigil maintainers <maintainers@vigil.invalid>';
  return { root, version, time, maintainer };
}
