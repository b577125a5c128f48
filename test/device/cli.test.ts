import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type Swtpm, startSwtpm } from '../support/swtpm.ts';
import { testPki } from '../support/tls-pair.ts';
import { removeDir, tempDir } from '../support/tmp.ts';

// The command line as an operator uses it, in a child process through tsx (the built JS runs the
// same code). `quote` output is checked by tpm2_checkquote, the tpm2-tools oracle.

const run = promisify(execFile);
const CLI = join(import.meta.dirname, '../../device/cli.ts');

function agentCli(args: string[]) {
  return run(process.execPath, ['--import', 'tsx', CLI, ...args], { env: { ...process.env, NO_COLOR: '1' } });
}

async function fails(args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    await agentCli(args);
  } catch (e) {
    const err = e as { code: number; stderr: string };
    return { code: err.code, stderr: err.stderr };
  }
  throw new Error(`vigil-agent ${args.join(' ')} succeeded; expected a failure`);
}

const ctx: { swtpm?: Swtpm; dir?: string; ca?: string } = {};
const test = suite('vigil-agent CLI', ctx);

test.before(async () => {
  ctx.swtpm = await startSwtpm();
  ctx.dir = tempDir('cli');
  ctx.ca = join(ctx.dir, 'gateway-ca.pem');
  writeFileSync(ctx.ca, testPki().ca);
});

test.after(async () => {
  await ctx.swtpm?.stop();
  if (ctx.dir) removeDir(ctx.dir);
});

/** `vigil-agent init` against `gateway` with the test's CA and swtpm; `extra` options before --dir. */
function initArgs(gateway: string, dir: string, ...extra: string[]): string[] {
  return ['init', '--gateway', gateway, '--ca', ctx.ca!, '--tpm', ctx.swtpm!.tcti, ...extra, '--dir', dir];
}

test('init provisions, prints the device id and EK hash, and is safe to re-run', async () => {
  const dir = join(ctx.dir!, 'agent');
  const args = initArgs('mqtts://localhost:8883', dir);
  const first = JSON.parse((await agentCli([...args, '--json'])).stdout);
  assert.match(first.deviceId, /^[0-9a-f]{24}$/);
  assert.match(first.ekHash, /^[0-9a-f]{64}$/);
  assert.ok(first.ekHash.startsWith(first.deviceId));
  const again = JSON.parse((await agentCli([...args, '--json'])).stdout);
  assert.equal(again, first, 'same EK, same persisted AK');
  const status = JSON.parse((await agentCli(['status', '--dir', dir, '--json'])).stdout);
  assert.is(status.deviceId, first.deviceId);
  assert.is(status.posture, 'unknown');
  const human = (await agentCli(['status', '--dir', dir])).stdout;
  assert.match(human, first.deviceId);
  assert.match(human, ctx.swtpm!.tcti);
});

test('quote output passes tpm2_checkquote', async () => {
  const dir = join(ctx.dir!, 'agent');
  const out = join(ctx.dir!, 'quote');
  const nonce = 'c0ffee'.repeat(5) + '00ff';
  const { stdout } = await agentCli([
    'quote',
    '--nonce',
    nonce,
    '--out',
    out,
    '--pcrs',
    '0,7,14',
    '--dir',
    dir,
  ]);
  assert.match(stdout, 'tpm2_checkquote');
  const { pcrs, argv } = parseHint(stdout);
  assert.is(pcrs, '0,7,14');
  const checked = await run('tpm2_checkquote', argv);
  assert.match(checked.stdout, 'pcrs:');
  // A different nonce must not pass: the check is real.
  const wrong = argv.map((a, i) => (argv[i - 1] === '-q' ? 'aa'.repeat(32) : a));
  await run('tpm2_checkquote', wrong).then(
    () => assert.unreachable('tpm2_checkquote accepted a wrong nonce'),
    () => {},
  );
});

function parseHint(stdout: string): { pcrs: string; argv: string[] } {
  const pcrs = /PCRs ([\d,]+)/.exec(stdout)?.[1] ?? '';
  const line = stdout.split('\n').find((l) => l.trim().startsWith('tpm2_checkquote')) ?? '';
  return { pcrs, argv: line.trim().split(/\s+/).slice(1) };
}

test('usage and configuration mistakes exit non-zero with the field named', async () => {
  const dir = join(ctx.dir!, 'agent');
  const noCommand = await fails([]);
  assert.is(noCommand.code, 2);
  assert.match(noCommand.stderr, 'no command given');
  const badNonce = await fails(['quote', '--nonce', 'xyz', '--out', ctx.dir!, '--dir', dir]);
  assert.is(badNonce.code, 2);
  assert.match(badNonce.stderr, '--nonce');
  const badUrl = await fails(initArgs('mqtt://localhost', dir));
  assert.is(badUrl.code, 1);
  assert.match(badUrl.stderr, 'only mqtts:// is allowed');
  const badPcr = await fails(initArgs('mqtts://localhost', dir, '--sw-pcr', '16'));
  assert.match(badPcr.stderr, '"--sw-pcr" must be a PCR from 8 to 15');
  const missing = await fails(['run', '--dir', join(ctx.dir!, 'nowhere')]);
  assert.is(missing.code, 1);
  assert.match(missing.stderr, 'agent.json does not exist');
  const help = await agentCli(['help']);
  assert.match(help.stdout, 'vigil-agent init --gateway');
});

test.run();
