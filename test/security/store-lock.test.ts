import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig } from '../../gateway/config.ts';
import { startGateway } from '../../gateway/gateway.ts';
import { GatewayLockedError } from '../../gateway/store/lock.ts';
import { sqliteSpecific } from '../support/gateway.ts';
import { settle } from '../support/operator.ts';
import { honestServed } from './abuse-support.ts';
import { attestedConnection, closeTestbed, openTestbed, type Testbed } from './testbed.ts';

// Two gateways on one posture store: each would believe it owns every device's live state. The
// second is refused, naming the first's pid, whether it starts in the same process or as the CLI;
// a lock left by a process that is gone, or by a pid now used by another process, is taken over.

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');

interface Ctx extends Testbed {
  lockPath: string;
}
const it = suite<Ctx>('one gateway per store');

// A PostgreSQL store is shared by several gateways by design (docs/scale.md): the lock is SQLite's.
sqliteSpecific('security/store-lock.test.ts', 'the lock on an SQLite file');

it.before(async (ctx) => {
  await openTestbed(ctx, { sqlite: true });
  ctx.lockPath = `${loadConfig(ctx.gw.dir).database}.lock`;
});

it.after((ctx) => closeTestbed(ctx));

const silent = pino({ level: 'silent' });

it('a second gateway on the directory, in this process: refused, naming the holder', async (ctx) => {
  const { gw } = ctx;
  try {
    const second = await startGateway({ dir: gw.dir, mqttPort: 0, apiPort: 0, logger: silent });
    await second.close();
    assert.unreachable('a second gateway started on the same store');
  } catch (e) {
    assert.instance(e, GatewayLockedError);
    assert.match((e as Error).message, new RegExp(`in use by the gateway with pid ${process.pid} `));
  }
  assert.is(JSON.parse(readFileSync(ctx.lockPath, 'utf8')).pid, process.pid, 'the lock stays the first one');
  await honestServed(gw, ctx.device, ctx.conn, 'after the second gateway was refused');
});

it('a second gateway on the directory, from the CLI: exits 1 with the holder in its message', async (ctx) => {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'gateway/cli.ts', 'start', '--dir', ctx.gw.dir, '--port', '0', '--api-port', '0'],
    { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const code = await Promise.race([exited, settle(20_000).then(() => 'still running' as const)]);
  if (code === 'still running') {
    child.kill();
    assert.unreachable('a second gateway runs on the same store');
  }
  assert.is(code, 1, stderr);
  assert.match(stderr, new RegExp(`the posture store is in use by the gateway with pid ${process.pid} `));
  await honestServed(ctx.gw, ctx.device, ctx.conn, 'after the CLI was refused');
});

it('a lock left by a dead process, or by a pid another process now has, is taken over', async (ctx) => {
  const { gw } = ctx;
  await ctx.conn.close();
  await gw.gateway.close();
  const dead = spawnSync(process.execPath, ['-e', '']).pid!;
  const stale = [
    { pid: dead, since: Date.now() - 60_000 },
    { pid: process.pid, start: 'not-this-process', since: Date.now() - 60_000 },
  ];
  for (const holder of stale) {
    writeFileSync(ctx.lockPath, JSON.stringify(holder));
    const next = await startGateway({ dir: gw.dir, mqttPort: 0, apiPort: 0, logger: silent });
    assert.is(JSON.parse(readFileSync(ctx.lockPath, 'utf8')).pid, process.pid, JSON.stringify(holder));
    await next.close();
  }
  await gw.restart();
  ctx.conn = await attestedConnection(gw, ctx.device);
  await honestServed(gw, ctx.device, ctx.conn, 'on the gateway started again');
});

it.run();
