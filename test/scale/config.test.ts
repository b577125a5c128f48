import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig } from '../../gateway/config.ts';
import { DEFAULT_HEALTH_PORT, DEFAULT_TIMINGS, defaultGatewayId } from '../../gateway/scale/scale-config.ts';
import { initGateway } from '../../gateway/setup/init.ts';
import { removeDir, tempDir } from '../support/tmp.ts';

// gateway.json's store and scale-out keys: what `init --database --redis` writes, what loadConfig
// accepts, and the errors for what it does not.

const run = promisify(execFile);
const ROOT = new URL('../..', import.meta.url).pathname;

function withConfig(edit: (json: Record<string, unknown>) => void, fn: (dir: string) => void): void {
  const dir = tempDir('scale-config-');
  try {
    initGateway({ dir, hosts: ['localhost'] });
    const file = join(dir, 'gateway.json');
    const json = JSON.parse(readFileSync(file, 'utf8'));
    edit(json);
    writeFileSync(file, JSON.stringify(json));
    fn(dir);
  } finally {
    removeDir(dir);
  }
}

test('by default: SQLite in the directory, no bus, no health port, an id stable for the directory', () => {
  withConfig(
    () => {},
    (dir) => {
      const c = loadConfig(dir);
      assert.is(c.scale.engine, 'sqlite');
      assert.is(c.database, join(dir, 'vigil.db'));
      assert.is(c.scale.redis, undefined);
      assert.is(c.scale.health, undefined);
      assert.is(c.scale.gatewayId, defaultGatewayId(dir));
      assert.equal(c.scale.timings, DEFAULT_TIMINGS);
    },
  );
});

test('a postgres:// database, a redis:// bus, an id, a health port and timings', () => {
  withConfig(
    (j) => {
      j.database = 'postgres://vigil:pw@db.example:5432/vigil';
      j.redis = 'redis://bus.example:6379';
      j.gatewayId = 'edge-1';
      j.health = { port: 9000 };
      j.scale = { claimTtlMs: 5000 };
    },
    (dir) => {
      const c = loadConfig(dir);
      assert.is(c.scale.engine, 'postgres');
      assert.is(c.database, 'postgres://vigil:pw@db.example:5432/vigil');
      assert.is(c.scale.redis, 'redis://bus.example:6379');
      assert.is(c.scale.gatewayId, 'edge-1');
      assert.equal(c.scale.health, { host: '0.0.0.0', port: 9000 });
      assert.equal(c.scale.timings, { ...DEFAULT_TIMINGS, claimTtlMs: 5000 });
    },
  );
});

test('wrong values are refused with the field, the value and what to do', () => {
  const cases: [(j: Record<string, unknown>) => void, RegExp][] = [
    [
      (j) => (j.redis = 'redis://bus:6379'),
      /redis: several gateways share their state in PostgreSQL: set "database" to a postgres:\/\/ URL/,
    ],
    [(j) => (j.redis = 'http://bus'), /redis: expected a redis:\/\/ URL .*"http:\/\/bus"/],
    [
      (j) => (j.database = 'postgres://a b/c'),
      /database: expected a postgres:\/\/ URL or an SQLite file name/,
    ],
    [(j) => (j.gatewayId = 'edge 1'), /gatewayId: expected 1 to 64 letters, digits/],
    [
      (j) => (j.scale = { leaseMs: 10 }),
      /scale.leaseMs: expected a whole number from 200 to 3600000, got 10/,
    ],
    [(j) => (j.scale = { lease: 1000 }), /scale.lease: unknown key/],
  ];
  for (const [edit, message] of cases) {
    withConfig(edit, (dir) => {
      assert.throws(() => loadConfig(dir), message);
    });
  }
});

test('`vigil-gateway init --database --redis --gateway-id --health-port` writes them, also into an existing directory', async () => {
  const dir = tempDir('scale-init-');
  try {
    const cli = (...args: string[]) =>
      run(process.execPath, ['--import', 'tsx', 'gateway/cli.ts', 'init', '--dir', dir, ...args], {
        cwd: ROOT,
      });
    await cli('--host', 'localhost');
    assert.is(loadConfig(dir).scale.engine, 'sqlite');
    await cli(
      '--database',
      'postgres://gw@db/vigil',
      '--redis',
      'redis://bus:6379',
      '--gateway-id',
      'edge-2',
    );
    const c = loadConfig(dir);
    assert.is(c.database, 'postgres://gw@db/vigil');
    assert.is(c.scale.redis, 'redis://bus:6379');
    assert.is(c.scale.gatewayId, 'edge-2');
    assert.equal(
      c.scale.health,
      { host: '0.0.0.0', port: DEFAULT_HEALTH_PORT },
      'a bus brings a health port',
    );
    await cli('--health-port', '9100');
    assert.is(loadConfig(dir).scale.health?.port, 9100);
    const bad = await cli('--health-port', 'x').then(
      () => 'accepted',
      (e: { stderr: string }) => e.stderr,
    );
    assert.match(bad, /--health-port must be a port number from 0 to 65535, got "x"/);
  } finally {
    removeDir(dir);
  }
});

test.run();
