import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { freePort } from '../support/ports.ts';
import { removeDir, tempDir } from '../support/tmp.ts';
import {
  attestAsTheUnitDoes,
  build,
  HOST_NODE,
  manifestDigestOf,
  nodeExec,
  packagePolicy,
  unitCommand,
  unpackDeb,
} from './support.ts';

// The edge server's package on its own: the gateway unpacked from vigil-gateway_*.deb (the built
// JavaScript and the node_modules the package carries, nothing from this checkout) initialised,
// started as its unit starts it, attested to by the packaged agent, and asked by its own operator
// command how the device stands.

const ctx: { out?: string; gw?: string; agent?: string; dir?: string; child?: ChildProcess } = {};
const test = suite('packaged gateway with the packaged agent', ctx);

test.before(async () => {
  ctx.out = tempDir('packages');
  ctx.gw = unpackDeb(await build('gateway', ctx.out));
  ctx.agent = unpackDeb(await build('agent', ctx.out));
  ctx.dir = tempDir('gateway-dir');
});

test.after(async () => {
  if (ctx.child && ctx.child.exitCode === null) {
    ctx.child.kill('SIGTERM');
    await new Promise((r) => ctx.child!.once('exit', r));
  }
  for (const d of [ctx.out, ctx.gw, ctx.agent, ctx.dir]) if (d) removeDir(d);
});

test('init, start, onboard and re-attest, then `vigil-gateway devices` reports the device affirming', async () => {
  const unit = unitCommand(readFileSync(join(ctx.gw!, 'lib/systemd/system/vigil-gateway.service'), 'utf8'));
  const cli = join(ctx.gw!, unit.script);
  const dir = ctx.dir!;
  const [mqttPort, apiPort] = [await freePort(), await freePort()];
  const gw = (args: string[]) => nodeExec(HOST_NODE, [cli, ...args], { VIGIL_GATEWAY_DIR: dir });
  await gw(['init', '--host', 'localhost', '--port', String(mqttPort), '--api-port', String(apiPort)]);
  const config = JSON.parse(readFileSync(join(dir, 'gateway.json'), 'utf8'));
  config.mqtt.host = '127.0.0.1'; // loopback only
  writeFileSync(join(dir, 'gateway.json'), JSON.stringify(config));
  const agentScript = join(ctx.agent!, 'usr/lib/vigil-agent/vigil-agent.mjs');
  const { version } = JSON.parse(readFileSync(join(ctx.agent!, 'usr/lib/vigil-agent/package.json'), 'utf8'));
  const { digest } = await manifestDigestOf(HOST_NODE, agentScript);
  writeFileSync(join(dir, 'policy.json'), JSON.stringify(packagePolicy(version, digest)));

  let log = '';
  ctx.child = spawn(process.execPath, [...unit.flags, cli, ...unit.args], {
    env: { ...process.env, VIGIL_GATEWAY_DIR: dir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  ctx.child.stdout!.on('data', (d) => (log += d));
  ctx.child.stderr!.on('data', (d) => (log += d));
  for (let i = 0; !existsSync(join(dir, 'run.json')); i++) {
    if (ctx.child.exitCode !== null || i > 200)
      throw new Error(`the packaged gateway did not start:\n${log}`);
    await new Promise((r) => setTimeout(r, 50));
  }

  const run = await attestAsTheUnitDoes(HOST_NODE, ctx.agent!, {
    url: `mqtts://localhost:${mqttPort}`,
    caPath: join(dir, 'ca.pem'),
  });
  assert.is(run.exitCode, 0);
  const { stdout } = await gw(['show', run.deviceId, '--json']);
  assert.match(stdout, '"affirming"');
  assert.match(stdout, run.deviceId);
});

test.run();
