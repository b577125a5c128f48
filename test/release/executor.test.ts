import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { replaySoftwareLog, SoftwareLog } from '../../device/software-log.ts';
import { TpmAccess } from '../../device/tpm-access.ts';
import { parseUpdateConfig, UPDATE_CONFIG_FILE } from '../../device/update/config.ts';
import { UpdateExecutor } from '../../device/update/executor.ts';
import { encodeMessage } from '../../shared/protocol/envelope.ts';
import type { Command, Report } from '../../shared/protocol/messages.ts';
import { trustedKey } from '../../shared/protocol/release-manifest.ts';
import { toHex } from '../../shared/tpm/bytes.ts';
import { type Swtpm, startSwtpm } from '../support/swtpm.ts';
import { removeDir, tempDir } from '../support/tmp.ts';
import { forge, TYPEFLAG, text } from './forge.ts';
import {
  activateCmd,
  chunkCmd,
  commitCmd,
  hexId,
  lastReport,
  makeRelease,
  operateCmd,
  provisionUpdates,
  releaseKey,
  stageCmd,
  type TestRelease,
  treeDigest,
  writeTree,
} from './support.ts';

// The device's update machinery on real files, real processes and a real TPM (swtpm): staging
// over chunks, every refusal leaving both slots as they were, activation measured into swPcr
// before the switch, health failure rolled back and measured back, a power cut (SIGKILL) after the
// switch recovered to a measured tree, and the agent restarting itself into a release.

const PCR = 14;
const ctx: { swtpm?: Swtpm; dirs: string[] } = { dirs: [] };
const it = suite('update executor', ctx);
it.before(async () => {
  ctx.swtpm = await startSwtpm();
});
it.after(async () => {
  await ctx.swtpm?.stop();
  for (const d of ctx.dirs) removeDir(d);
});

const pinned = releaseKey();
const V1 = { 'bin/app': { data: '#!/bin/sh\necho v1\n', exec: true as const }, ok: 'healthy\n' };
// Over two chunks, so that fetching asks more than once.
const V2 = {
  'bin/app': { data: '#!/bin/sh\necho v2\n', exec: true as const },
  ok: 'healthy\n',
  'lib/blob': 'x'.repeat(100_000),
};
const V2_SICK = { 'bin/app': { data: '#!/bin/sh\nexit 1\n', exec: true as const } };
const release = (version: string, seq: number, files: typeof V1 | typeof V2 | typeof V2_SICK, extra = {}) =>
  makeRelease({ key: pinned.privateKey, name: 'app', version, seq, files, windowMs: 300, ...extra });

interface Env {
  readonly dir: string;
  readonly slots: string;
  tpm: TpmAccess;
  log: SoftwareLog;
  executor: UpdateExecutor;
  readonly reports: Report[];
  reopen(): Promise<void>;
  close(): Promise<void>;
}

/** A device: agent dir, slot `a` holding V1, update.json, the software log on a freshly reset swtpm. */
async function device(opts: { agent?: boolean } = {}): Promise<Env> {
  await ctx.swtpm!.restart();
  const root = tempDir('update');
  ctx.dirs.push(root);
  const { dir, slots } = provisionUpdates(root, {
    files: V1,
    agent: opts.agent ?? false,
    operation: `cat > ${root}/op-args; echo "$VIGIL_OPERATION $VIGIL_OPERATE_AT" >> ${root}/op-runs`,
  });
  const env = { dir, slots, reports: [] as Report[] } as unknown as Env;
  env.reopen = async () => {
    env.tpm = new TpmAccess(ctx.swtpm!.tcti);
    env.log = (await env.tpm.run((t) => SoftwareLog.open(dir, PCR, t))).log;
    const opened = await UpdateExecutor.open({
      dir,
      config: parseUpdateConfig(JSON.parse(readFileSync(join(dir, UPDATE_CONFIG_FILE), 'utf8')), dir),
      keys: [trustedKey(pinned.publicKey)],
      record: async (m) => {
        await env.tpm.run((t) => env.log.record(t, m));
      },
      report: (r) => env.reports.push(r),
      exit: () => {
        throw new Error('this device is not the agent');
      },
    });
    env.executor = opened.executor;
  };
  env.close = async () => {
    await env.executor.close();
    await env.tpm.close();
  };
  await env.reopen();
  return env;
}

/** What both slots and the link hold: paths and contents of every file. */
function snapshot(slots: string): string {
  const walk = (d: string, rel = ''): string[] =>
    existsSync(d)
      ? readdirSync(d).flatMap((n) => {
          const p = join(d, n);
          return statSync(p).isDirectory()
            ? walk(p, `${rel}${n}/`)
            : [`${rel}${n} ${createHash('sha256').update(readFileSync(p)).digest('hex')}`];
        })
      : [];
  return JSON.stringify({
    current: readlinkSync(join(slots, 'current')),
    a: walk(join(slots, 'a')),
    b: walk(join(slots, 'b')),
  });
}

/** Plays the gateway for a staging: the stage, then a chunk for every `want`. */
async function stage(env: Env, rel: TestRelease, tamper?: (chunk: Uint8Array, offset: number) => Uint8Array) {
  const cmd = stageCmd(rel.manifest);
  await env.executor.handle(cmd);
  for (;;) {
    const r = lastReport(env.reports, hexId(cmd));
    if (r?.state !== 'fetching' || !r.want) return { cmd, report: r };
    const data = rel.artifact.slice(r.want.offset, r.want.offset + r.want.length);
    await env.executor.handle(chunkCmd(cmd.id, r.want.offset, tamper ? tamper(data, r.want.offset) : data));
  }
}

async function activate(env: Env): Promise<Report | undefined> {
  const cmd = activateCmd();
  await env.executor.handle(cmd);
  await env.executor.idle();
  return lastReport(env.reports, hexId(cmd));
}

async function pcrValue(env: Env): Promise<Uint8Array> {
  return (await env.tpm.run((t) => t.pcrRead([PCR]))).get(PCR)!;
}

const codeOf = (r: Report | undefined) => (r && 'code' in r ? r.code : undefined);

it('stage over chunks, activate measured before the switch, healthy, commit raises the floor', async () => {
  const env = await device();
  try {
    const v2 = release('2.0.0', 2, V2);
    const staged = await stage(env, v2);
    assert.is(staged.report?.state, 'staged');
    assert.ok(env.reports.filter((r) => r.state === 'fetching').length >= 2, 'fetched in several chunks');
    assert.is(readlinkSync(join(env.slots, 'current')), 'a', 'staging never touches the current slot');
    assert.is(readFileSync(join(env.slots, 'b/bin/app'), 'utf8'), '#!/bin/sh\necho v2\n');
    assert.is(statSync(join(env.slots, 'b/bin/app')).mode & 0o777, 0o755);
    const r = await activate(env);
    assert.is(r?.state, 'activated', JSON.stringify(r));
    assert.is(readlinkSync(join(env.slots, 'current')), 'b');
    assert.is(readFileSync(join(env.dir, '../restarts'), 'utf8'), 'restarted\n');
    assert.is(toHex(env.log.current('app')!.digest), v2.digest, 'the log says v2 runs');
    assert.is(toHex(env.log.current('app')!.digest), toHex(treeDigest('app', '2.0.0', V2)));
    assert.equal(
      await pcrValue(env),
      replaySoftwareLog(env.log.chunk(0).entries),
      'the PCR replays from the log',
    );
    assert.equal(
      env.log.chunk(0).entries.map((e) => e.version),
      ['1.0.0', '2.0.0'],
    );
    await env.executor.handle(commitCmd());
    assert.equal(env.executor.state.floors, { app: { seq: 2, digest: v2.digest } });
    assert.not.ok(existsSync(join(env.slots, 'a')), 'the previous tree is dropped once committed');
  } finally {
    await env.close();
  }
});

it('refused with their codes, and nothing in either slot changes', async () => {
  const env = await device();
  try {
    // A committed release first, so that there is a floor to stay above.
    assert.is((await stage(env, release('3.0.0', 3, V2))).report?.state, 'staged');
    assert.is((await activate(env))?.state, 'activated');
    await env.executor.handle(commitCmd());
    writeTree(join(env.slots, 'a'), { leftover: 'kept in the inactive slot' });
    const before = snapshot(env.slots);
    const unpinned = releaseKey();
    const evil = (members: Parameters<typeof forge>[0]) =>
      release('4.0.0', 4, V1, { artifact: forge(members) });
    const cases: [string, TestRelease, string, ((c: Uint8Array, o: number) => Uint8Array)?][] = [
      [
        'tampered artifact bytes',
        release('4.0.0', 4, V2),
        'artifact-invalid',
        (c, o) => (o === 0 ? c.map((b, i) => (i === 600 ? b ^ 1 : b)) : c),
      ],
      [
        'a key not pinned',
        makeRelease({ key: unpinned.privateKey, name: 'app', version: '4', seq: 4, files: V1 }),
        'release-key-unknown',
      ],
      [
        'another software',
        makeRelease({ key: pinned.privateKey, name: 'firmware', version: '4', seq: 4, files: V1 }),
        'unsupported',
      ],
      ['expired', release('4.0.0', 4, V1, { expires: Date.now() - 1 }), 'expired'],
      ['below the floor', release('1.5.0', 2, V1), 'rollback-refused'],
      ['a ../ path', evil([{ header: { name: '../escape' }, data: text('x') }]), 'artifact-invalid'],
      [
        'a symbolic link',
        evil([{ header: { name: 'link', typeflag: TYPEFLAG.symlink, linkname: '/etc' } }]),
        'artifact-invalid',
      ],
      [
        'a hard link',
        evil([{ header: { name: 'hard', typeflag: TYPEFLAG.hardLink, linkname: 'ok' } }]),
        'artifact-invalid',
      ],
      [
        'a tree that is not the digest',
        release('4.0.0', 4, V1, { artifact: release('x', 9, V2_SICK).artifact }),
        'artifact-invalid',
      ],
    ];
    for (const [what, rel, code, tamper] of cases) {
      const { report } = await stage(env, rel, tamper);
      assert.equal([report?.state, codeOf(report)], ['failed', code], `${what}: ${JSON.stringify(report)}`);
      assert.is(snapshot(env.slots), before, `${what}: the slots are as they were`);
      assert.not.ok(existsSync(join(env.slots, '.incoming')), `${what}: nothing left unpacked`);
      assert.not.ok(existsSync(join(env.slots, '../escape')), `${what}: nothing escaped`);
      assert.is(env.executor.state.job, undefined);
    }
  } finally {
    await env.close();
  }
});

it('health fails: switched back, and the log names the old digest again, measured', async () => {
  const env = await device();
  try {
    const sick = release('2.0.0', 2, V2_SICK);
    assert.is((await stage(env, sick)).report?.state, 'staged');
    const r = await activate(env);
    assert.equal([r?.state, codeOf(r)], ['rolled-back', 'health-failed'], JSON.stringify(r));
    assert.is(readlinkSync(join(env.slots, 'current')), 'a');
    const v1 = toHex(treeDigest('app', '1.0.0', V1));
    assert.equal(
      env.log.chunk(0).entries.map((e) => [e.version, toHex(e.digest)]),
      [
        ['1.0.0', v1],
        ['2.0.0', sick.digest],
        ['1.0.0', v1],
      ],
      'v1, then v2 before it ran, then v1 again before it ran again',
    );
    assert.equal(await pcrValue(env), replaySoftwareLog(env.log.chunk(0).entries));
    assert.is(readFileSync(join(env.dir, '../restarts'), 'utf8'), 'restarted\nrestarted\n');
  } finally {
    await env.close();
  }
});

it('a fetch interrupted by a restart of the agent resumes where it was', async () => {
  const env = await device();
  try {
    const v2 = release('2.0.0', 2, V2);
    const cmd = stageCmd(v2.manifest);
    await env.executor.handle(cmd);
    await env.executor.handle(chunkCmd(cmd.id, 0, v2.artifact.slice(0, 65_536)));
    await env.close();
    await env.reopen();
    const want = lastReport(env.reports, hexId(cmd));
    assert.equal(want?.state === 'fetching' && want.want, {
      offset: 65_536,
      length: v2.artifact.length - 65_536,
    });
    for (let off = 65_536; off < v2.artifact.length; off += 65_536)
      await env.executor.handle(chunkCmd(cmd.id, off, v2.artifact.slice(off, off + 65_536)));
    assert.is(lastReport(env.reports, hexId(cmd))?.state, 'staged');
  } finally {
    await env.close();
  }
});

it('an operation runs its handler once, at its time, with the args on stdin', async () => {
  const env = await device();
  try {
    const op = operateCmd('recipe', Date.now() + 200, new Map([['recipe', 'B']]));
    await env.executor.handle(op);
    assert.is(lastReport(env.reports, hexId(op)), undefined, 'not before its time');
    await new Promise((r) => setTimeout(r, 250));
    await env.executor.idle();
    assert.is(lastReport(env.reports, hexId(op))?.state, 'done');
    await env.executor.handle(op);
    await env.executor.idle();
    const runs = readFileSync(join(env.dir, '../op-runs'), 'utf8').trim().split('\n');
    assert.is(runs.length, 1, 'a repeated id never runs twice');
    assert.match(runs[0]!, /^recipe \d+$/);
    assert.is(
      readFileSync(join(env.dir, '../op-args')).toString('hex'),
      'a1667265636970656142',
      'the CBOR map {recipe: "B"}',
    );
  } finally {
    await env.close();
  }
});

/** Runs the executor in a child process with one command; resolves on its exit. */
function child(env: Env, command: Command, onLine: (line: Record<string, unknown>, p: ChildProcess) => void) {
  const p = spawn(
    process.execPath,
    ['--import', 'tsx', join(import.meta.dirname, 'fixtures/executor-child.ts')],
    {
      env: {
        ...process.env,
        VIGIL_TEST_CHILD: JSON.stringify({
          dir: env.dir,
          tcti: ctx.swtpm!.tcti,
          pcr: PCR,
          key: pinned.publicKey.export({ format: 'pem', type: 'spki' }).toString(),
          command: Buffer.from(encodeMessage(command)).toString('hex'),
        }),
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const lines: Record<string, unknown>[] = [];
  let buf = '';
  p.stdout!.on('data', (b: Buffer) => {
    buf += b.toString('utf8');
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = JSON.parse(buf.slice(0, i)) as Record<string, unknown>;
      buf = buf.slice(i + 1);
      lines.push(line);
      onLine(line, p);
    }
  });
  return new Promise<{ code: number | null; signal: string | null; lines: typeof lines }>((resolve) =>
    p.on('exit', (code, signal) => resolve({ code, signal, lines })),
  );
}

it('power cut after the switch, before the health verdict: recovery ends on the measured old tree', async () => {
  const env = await device();
  try {
    writeFileSync(
      join(env.dir, UPDATE_CONFIG_FILE),
      readFileSync(join(env.dir, UPDATE_CONFIG_FILE), 'utf8').replace(
        '"healthIntervalMs":50',
        '"healthIntervalMs":50,"healthWindowMs":600000',
      ),
    );
    const v2 = makeRelease({ key: pinned.privateKey, name: 'app', version: '2.0.0', seq: 2, files: V2 });
    assert.is((await stage(env, v2)).report?.state, 'staged');
    await env.close();
    // The child switches, restarts the software, and is killed while it watches the new release.
    const run = await child(env, activateCmd(), (line, p) => {
      if (line.event === 'switched') p.kill('SIGKILL');
    });
    assert.is(run.signal, 'SIGKILL');
    assert.is(readlinkSync(join(env.slots, 'current')), 'b', 'killed after the switch');
    assert.is(env.executor.state.job?.phase, 'staged', '(the parent still holds the old state)');
    await env.reopen();
    const { slot, content } = env.executor.running();
    assert.is(slot, 'a', 'recovery says the old tree runs');
    assert.is(content.version, '1.0.0');
    assert.is(readlinkSync(join(env.slots, 'current')), 'a');
    const v1 = toHex(treeDigest('app', '1.0.0', V1));
    assert.is(toHex(env.log.current('app')!.digest), v1, 'and the log says so, measured');
    assert.equal(await pcrValue(env), replaySoftwareLog(env.log.chunk(0).entries));
    const rolled = env.reports.find((r) => r.state === 'rolled-back');
    assert.is(codeOf(rolled), 'health-failed');
  } finally {
    await env.close();
  }
});

it('the agent as the software: it exits after the switch, and its next start judges and keeps the release', async () => {
  const env = await device({ agent: true });
  try {
    const v2 = release('2.0.0', 2, V2);
    assert.is((await stage(env, v2)).report?.state, 'staged');
    await env.close();
    const run = await child(env, activateCmd(), () => {});
    assert.is(run.code, 75, 'exits for systemd to restart it into the release');
    assert.ok(run.lines.some((l) => l.event === 'switched'));
    assert.is(readlinkSync(join(env.slots, 'current')), 'b');
    await env.reopen();
    await env.executor.idle();
    assert.is(env.executor.state.job?.phase, 'activated');
    assert.is(env.reports.at(-1)?.state, 'activated');
    assert.is(toHex(env.log.current('app')!.digest), v2.digest);
    assert.equal(await pcrValue(env), replaySoftwareLog(env.log.chunk(0).entries));
  } finally {
    await env.close();
  }
});

it.run();
