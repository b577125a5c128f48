import * as fs from 'node:fs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { buildManifest, formatManifest, manifestDigest } from '../../shared/protocol/software-manifest.ts';
import { removeDir, tempDir } from '../support/tmp.ts';
import {
  attestAgainstTestGateway,
  build,
  debianNode18,
  HOST_NODE,
  manifestDigestOf,
  type NodeRuntime,
  nodeExec,
  unpackDeb,
} from './support.ts';

// The packaged agent, unpacked from its .deb, on Debian 12's own Node 18 and on this machine's
// Node 20, against a real gateway and a swtpm: it onboards and re-attests, affirming, started the
// way its unit starts it. The gateway's policy allows exactly the manifest the bundle measures.

const ctx: { out?: string; root?: string } = {};
const test = suite('packaged agent on Node 18 and 20', ctx);
const figures: string[] = [];

test.before(async () => {
  ctx.out = tempDir('packages');
  ctx.root = unpackDeb(await build('agent', ctx.out));
});

test.after(() => {
  if (ctx.out) removeDir(ctx.out);
  if (ctx.root) removeDir(ctx.root);
  if (figures.length) console.log(`\n${figures.join('\n')}`);
});

const lib = () => join(ctx.root!, 'usr/lib/vigil-agent');
const script = () => join(lib(), 'vigil-agent.mjs');

test('the manifest covers the bundle directory, and the agent measures the same digest', async () => {
  const { version } = JSON.parse(readFileSync(join(lib(), 'package.json'), 'utf8')) as { version: string };
  const ours = formatManifest(buildManifest(fs, lib(), { name: 'vigil-agent', version }));
  const printed = await manifestDigestOf(HOST_NODE, script());
  assert.is(printed.manifest, ours);
  assert.is(printed.digest, Buffer.from(manifestDigest(ours)).toString('hex'));
  assert.is(
    readFileSync(join(ctx.out!, `vigil-agent_${version}.manifest`), 'utf8'),
    ours,
    'the release manifest beside the .deb',
  );
  assert.match(ours, / vigil-agent\.mjs\n/);
  assert.match(ours, / package\.json\n/);
});

async function onboardsAndReattests(node: NodeRuntime): Promise<void> {
  const r = await attestAgainstTestGateway(node, ctx.root!);
  assert.is(r.exitCode, 0, 'SIGTERM stops the agent cleanly');
  assert.ok(r.lines.some((l) => l.msg === 'agent stopped'));
  figures.push(
    `${node.label}: first affirming result ${r.firstResultMs.toFixed(0)} ms after start, RSS after two rounds ${(r.rssKb / 1024).toFixed(1)} MiB`,
  );
}

test("Debian 12's Node 18: onboards and re-attests", async () => {
  const node = await debianNode18();
  const { stdout } = await nodeExec(node, ['--version']);
  assert.match(stdout, /^v18\./);
  await onboardsAndReattests(node);
});

test("this machine's Node 20: onboards and re-attests", async () => {
  const { stdout } = await nodeExec(HOST_NODE, ['--version']);
  assert.match(stdout, /^v2\d\./);
  await onboardsAndReattests(HOST_NODE);
});

test.run();
