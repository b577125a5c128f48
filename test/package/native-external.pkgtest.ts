import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { stageAgentDir } from '../../scripts/package/agent-package.ts';
import { release } from '../../scripts/package/context.ts';
import { hostArch } from '../../scripts/package/gateway-package.ts';
import { removeDir, tempDir } from '../support/tmp.ts';
import { HOST_NODE, nodeExec, ROOT } from './support.ts';

// The agent will talk to microcontroller attesters through serialport, whose binding is compiled
// code. The bundler keeps such a package external and copies it, with what it needs and the
// prebuild for the target architecture only, into node_modules beside the bundle. Shown here with
// a small program bundled the same way, run from a directory outside the checkout, echoing a line
// through a socat pseudo-terminal.

const ctx: { dir?: string; socat?: ChildProcess } = {};
const test = suite('a native module beside the bundle', ctx);

test.after(async () => {
  if (ctx.socat && ctx.socat.exitCode === null) {
    ctx.socat.kill('SIGTERM');
    await new Promise((r) => ctx.socat!.once('exit', r));
  }
  if (ctx.dir) removeDir(ctx.dir);
});

test('serialport stays external, ships with one architecture, and works from the bundle', async () => {
  ctx.dir = tempDir('native-external');
  const arch = hostArch();
  const app = join(ctx.dir, 'app');
  const staged = await stageAgentDir(release(ROOT), app, [arch], 'test/package/fixtures/serial-echo.ts');
  assert.equal(staged.natives, ['@serialport/bindings-cpp']);
  const prebuilds = join(app, 'node_modules/@serialport/bindings-cpp/prebuilds');
  assert.equal(readdirSync(prebuilds), [`linux-${{ amd64: 'x64', arm64: 'arm64', armhf: 'arm' }[arch]}`]);
  assert.not.ok(existsSync(join(app, 'node_modules/@serialport/bindings-cpp/src')), 'no C++ sources');
  assert.ok(existsSync(join(app, 'node_modules/node-gyp-build')), 'its loader came along');

  const tty = join(ctx.dir, 'tty');
  ctx.socat = spawn('socat', [`pty,raw,echo=0,link=${tty}`, 'SYSTEM:cat'], { stdio: 'ignore' });
  for (let i = 0; !existsSync(tty); i++) {
    if (i > 100) throw new Error('socat made no pseudo-terminal');
    await new Promise((r) => setTimeout(r, 20));
  }
  const { stdout } = await nodeExec(HOST_NODE, [join(app, 'vigil-agent.mjs'), tty]);
  assert.is(stdout, 'ping from the bundle\n');
});

test.run();
