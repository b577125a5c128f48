import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type Effect, type Event, type MachineContext, nextDue, step } from '../../device/update/machine.ts';
import { type Job, UPDATE_STATE_VERSION, type UpdateState } from '../../device/update/state.ts';
import type { Command, Report } from '../../shared/protocol/messages.ts';
import { trustedKey } from '../../shared/protocol/release-manifest.ts';
import { toHex } from '../../shared/tpm/bytes.ts';
import {
  activateCmd,
  cancelCmd,
  chunkCmd,
  commitCmd,
  hexId,
  makeRelease,
  operateCmd,
  releaseKey,
  rollbackCmd,
  stageCmd,
  type TestRelease,
} from './support.ts';

// The device's update state machine as a pure function: every decision, with the executor's
// results played by the test. The same transitions run on real files and swtpm in executor.test.ts.

const it = suite('update machine');

const pinned = releaseKey();
const unpinned = releaseKey();
const NOW = 1_900_000_000_000;
const ctx: MachineContext = {
  software: 'app',
  agent: false,
  keys: [trustedKey(pinned.publicKey)],
  healthWindowMs: 5000,
  operations: new Set(['recipe']),
};
const V1 = 'aa'.repeat(32);
const initial: UpdateState = {
  version: UPDATE_STATE_VERSION,
  current: 'a',
  slots: { a: { name: 'app', version: '1.0.0', digest: V1 } },
  floors: {},
  operations: {},
  done: [],
  outbox: [],
};
const v2 = makeRelease({
  key: pinned.privateKey,
  name: 'app',
  version: '2.0.0',
  seq: 2,
  files: { 'bin/app': 'v2' },
  windowMs: 300,
});

const kinds = (effects: readonly Effect[]) => effects.map((e) => e.kind);
const reports = (effects: readonly Effect[]) =>
  effects.filter((e): e is Extract<Effect, { kind: 'report' }> => e.kind === 'report').map((e) => e.report);
const command = (c: Command, now = NOW): Event => ({ kind: 'command', now, command: c });

function onlyReport(effects: readonly Effect[]): Report {
  const r = reports(effects);
  assert.is(r.length, 1, `one report expected, got ${JSON.stringify(kinds(effects))}`);
  return r[0]!;
}

/** Stages `rel` through every executor result, as a working executor would. */
function staged(rel: TestRelease = v2, s0: UpdateState = initial, c = ctx) {
  const stage = stageCmd(rel.manifest);
  const id = hexId(stage);
  let r = step(s0, command(stage), c);
  assert.equal(kinds(r.effects), ['reset-staging', 'report']);
  assert.equal(onlyReport(r.effects), {
    t: 'report',
    command: stage.id,
    sw: { name: 'app', version: '1.0.0' },
    state: 'fetching',
    want: { offset: 0, length: rel.artifact.length },
  });
  r = step(r.state, command(chunkCmd(stage.id, 0, rel.artifact)), c);
  assert.equal(kinds(r.effects), ['write-chunk']);
  r = step(r.state, { kind: 'chunk-stored', now: NOW, stage: id, end: rel.artifact.length }, c);
  assert.equal(kinds(r.effects), ['check-artifact']);
  const sha = r.state.job?.phase === 'unpacking' ? r.state.job.release.sha256 : '';
  r = step(
    r.state,
    { kind: 'artifact-checked', now: NOW, stage: id, size: rel.artifact.length, sha256: sha },
    c,
  );
  assert.equal(kinds(r.effects), ['unpack']);
  r = step(r.state, { kind: 'unpacked', now: NOW, stage: id, digest: rel.digest }, c);
  assert.equal(r.effects, [{ kind: 'place-unpacked', stage: id, slot: 'b' }]);
  r = step(r.state, { kind: 'placed', now: NOW, stage: id }, c);
  assert.is(onlyReport(r.effects).state, 'staged');
  assert.is(r.state.job?.phase, 'staged');
  assert.equal(r.state.slots.b, { name: 'app', version: '2.0.0', digest: rel.digest, seq: 2 });
  return { state: r.state, stage };
}

/** Activates what is staged; returns the state after the switch. */
function activated(c = ctx) {
  const { state, stage } = staged(v2, initial, c);
  const activate = activateCmd();
  let r = step(state, command(activate), c);
  // Measure before run: the new tree is extended into swPcr before `current` moves to it.
  assert.equal(r.effects, [
    { kind: 'record', slot: 'b', name: 'app', version: '2.0.0' },
    { kind: 'switch', slot: 'b' },
  ]);
  assert.is(r.state.job?.phase, 'activating');
  r = step(r.state, { kind: 'switched', now: NOW + 10, slot: 'b' }, c);
  return { r, stage, activate };
}

it('stage → fetch → check → unpack aside → place → staged; then activate, health, commit', () => {
  const { r, activate } = activated();
  assert.is(r.state.current, 'b');
  assert.equal(r.effects, [
    { kind: 'restart' },
    { kind: 'watch-health', activate: hexId(activate), windowMs: 300 },
  ]);
  let next = step(
    r.state,
    { kind: 'health', now: NOW + 400, activate: hexId(activate), ok: true, detail: 'ok' },
    ctx,
  );
  assert.is(onlyReport(next.effects).state, 'activated');
  assert.is(next.state.job?.phase, 'activated');
  const commit = commitCmd();
  next = step(next.state, command(commit), ctx);
  assert.equal(kinds(next.effects), ['report', 'clear-slot']);
  assert.is(onlyReport(next.effects).state, 'committed');
  assert.equal(next.state.floors, { app: { seq: 2, digest: v2.digest } });
  assert.is(next.state.slots.a, undefined, 'the previous tree is dropped at commit');
  assert.is(next.state.job, undefined);
  // A repeated id is answered with the state reached, and nothing is done again.
  const again = step(next.state, command(commit), ctx);
  assert.equal(kinds(again.effects), ['report']);
  assert.is(onlyReport(again.effects).state, 'committed');
  // After the commit the floor holds: going back is refused.
  const back = step(next.state, command(rollbackCmd()), ctx);
  assert.equal(onlyReport(back.effects).state, 'failed');
  assert.is((onlyReport(back.effects) as { code?: string }).code, 'rollback-refused');
});

it('refused at stage, with its code, before any slot or file is touched', () => {
  const floor: UpdateState = { ...initial, floors: { app: { seq: 5, digest: 'bb'.repeat(32) } } };
  const cases: [TestRelease, UpdateState, string][] = [
    [
      makeRelease({ key: unpinned.privateKey, name: 'app', version: '2', seq: 9, files: { a: '1' } }),
      initial,
      'release-key-unknown',
    ],
    [
      makeRelease({ key: pinned.privateKey, name: 'other', version: '2', seq: 9, files: { a: '1' } }),
      initial,
      'unsupported',
    ],
    [
      makeRelease({
        key: pinned.privateKey,
        name: 'app',
        version: '2',
        seq: 9,
        files: { a: '1' },
        expires: NOW,
      }),
      initial,
      'expired',
    ],
    [
      makeRelease({ key: pinned.privateKey, name: 'app', version: '2', seq: 4, files: { a: '1' } }),
      floor,
      'rollback-refused',
    ],
    [
      makeRelease({ key: pinned.privateKey, name: 'app', version: '2', seq: 5, files: { a: '1' } }),
      floor,
      'rollback-refused',
    ],
  ];
  for (const [rel, s, code] of cases) {
    const stage = stageCmd(rel.manifest);
    const r = step(s, command(stage), ctx);
    assert.equal(kinds(r.effects), ['report'], code);
    const rep = onlyReport(r.effects) as Report & { code?: string };
    assert.equal([rep.state, rep.code], ['failed', code]);
    assert.is(r.state.job, undefined);
    assert.equal(r.state.slots, s.slots);
    assert.is(r.state.done.at(-1)?.id, hexId(stage), 'remembered for a repeated id');
  }
  const mangled = new Uint8Array(v2.manifest);
  mangled[mangled.length - 1]! ^= 1;
  const r = step(initial, command(stageCmd(mangled)), ctx);
  assert.is((onlyReport(r.effects) as { code?: string }).code, 'manifest-invalid');
});

it('fetching: wrong offset asks again, a chunk past the end or a wrong hash drops the staging', () => {
  const stage = stageCmd(v2.manifest);
  const s = step(initial, command(stage), ctx).state;
  const wrong = step(s, command(chunkCmd(stage.id, 100, new Uint8Array(10))), ctx);
  assert.equal((onlyReport(wrong.effects) as { want?: unknown }).want, {
    offset: 0,
    length: v2.artifact.length,
  });
  const past = step(s, command(chunkCmd(stage.id, 0, new Uint8Array(v2.artifact.length + 1))), ctx);
  assert.equal(kinds(past.effects), ['discard-unpacked', 'reset-staging', 'report']);
  assert.is((onlyReport(past.effects) as { code?: string }).code, 'artifact-invalid');
  const other = step(
    s,
    command(
      stageCmd(
        makeRelease({ key: pinned.privateKey, name: 'app', version: '3', seq: 3, files: { a: '3' } })
          .manifest,
      ),
    ),
    ctx,
  );
  assert.is((onlyReport(other.effects) as { code?: string }).code, 'busy');
  // The same release under a new stage id resumes where the first one was.
  const again = stageCmd(v2.manifest);
  const resumed = step(s, command(again), ctx);
  assert.is(toHex(onlyReport(resumed.effects).command), hexId(again));
  let r = step(s, { kind: 'chunk-stored', now: NOW, stage: hexId(stage), end: v2.artifact.length }, ctx);
  r = step(
    r.state,
    {
      kind: 'artifact-checked',
      now: NOW,
      stage: hexId(stage),
      size: v2.artifact.length,
      sha256: '00'.repeat(32),
    },
    ctx,
  );
  assert.is((onlyReport(r.effects) as { code?: string }).code, 'artifact-invalid');
  assert.ok(kinds(r.effects).includes('discard-unpacked'));
  assert.is(r.state.job, undefined);
});

it('an unpacked tree that measures to another digest never reaches a slot', () => {
  const stage = stageCmd(v2.manifest);
  let r = step(initial, command(stage), ctx);
  r = step(r.state, { kind: 'chunk-stored', now: NOW, stage: hexId(stage), end: v2.artifact.length }, ctx);
  const sha = r.state.job?.phase === 'unpacking' ? r.state.job.release.sha256 : '';
  r = step(
    r.state,
    { kind: 'artifact-checked', now: NOW, stage: hexId(stage), size: v2.artifact.length, sha256: sha },
    ctx,
  );
  r = step(r.state, { kind: 'unpacked', now: NOW, stage: hexId(stage), digest: 'cc'.repeat(32) }, ctx);
  assert.equal(kinds(r.effects), ['discard-unpacked', 'reset-staging', 'report']);
  assert.is((onlyReport(r.effects) as { code?: string }).code, 'artifact-invalid');
  assert.equal(r.state.slots, initial.slots);
});

it('health fails: measured back to the old tree before switching back, then rolled-back health-failed', () => {
  const { r, activate } = activated();
  let next = step(
    r.state,
    { kind: 'health', now: NOW + 400, activate: hexId(activate), ok: false, detail: 'probe exited 1' },
    ctx,
  );
  assert.equal(next.effects, [
    { kind: 'record', slot: 'a', name: 'app', version: '1.0.0' },
    { kind: 'switch', slot: 'a' },
  ]);
  next = step(next.state, { kind: 'switched', now: NOW + 500, slot: 'a' }, ctx);
  assert.equal(kinds(next.effects), ['report', 'restart']);
  const rep = onlyReport(next.effects) as Report & { code?: string };
  assert.equal([rep.state, rep.code, toHex(rep.command)], ['rolled-back', 'health-failed', hexId(activate)]);
  assert.is(next.state.current, 'a');
  assert.is(next.state.job, undefined);
});

it('recovery at start: an interrupted switch or an unjudged release is undone; a planned restart continues', () => {
  const { r, activate } = activated();
  const activating: UpdateState = {
    ...r.state,
    current: 'a',
    job: { ...(r.state.job as Extract<Job, { phase: 'health' }>), phase: 'activating' },
  };
  for (const s of [activating, r.state]) {
    const rec = step(s, { kind: 'started', now: NOW + 1000, current: 'b' }, ctx);
    assert.equal(rec.effects, [
      { kind: 'record', slot: 'a', name: 'app', version: '1.0.0' },
      { kind: 'switch', slot: 'a' },
    ]);
    assert.is(rec.state.job?.phase, 'rolling-back');
    const done = step(rec.state, { kind: 'switched', now: NOW + 1001, slot: 'a' }, ctx);
    const rep = onlyReport(done.effects) as Report & { code?: string };
    assert.equal(
      [rep.state, rep.code, toHex(rep.command)],
      ['rolled-back', 'health-failed', hexId(activate)],
    );
  }
  const agent = { ...ctx, agent: true };
  const a = activated(agent);
  assert.equal(a.r.effects, [{ kind: 'restart' }], 'the agent restarts itself; its next start watches');
  assert.ok(a.r.state.job?.phase === 'health' && a.r.state.job.plannedRestart);
  const cont = step(a.r.state, { kind: 'started', now: NOW + 2000, current: 'b' }, agent);
  assert.equal(cont.effects, [{ kind: 'watch-health', activate: hexId(a.activate), windowMs: 300 }]);
  assert.ok(
    cont.state.job?.phase === 'health' &&
      !cont.state.job.plannedRestart &&
      cont.state.job.since === NOW + 2000,
  );
  // Restarted again while being watched: not planned, so undone.
  const again = step(cont.state, { kind: 'started', now: NOW + 3000, current: 'b' }, agent);
  assert.is(again.state.job?.phase, 'rolling-back');
  // The agent's switch back ends with a restart; its report waits in the outbox for the next start.
  const back = step(again.state, { kind: 'switched', now: NOW + 3001, slot: 'a' }, agent);
  assert.equal(back.state.outbox, [hexId(a.activate)]);
  const after = step(back.state, { kind: 'started', now: NOW + 4000, current: 'a' }, agent);
  assert.equal(kinds(after.effects), ['report', 'record']);
  assert.equal(after.state.outbox, []);
});

it('recovery while fetching resumes at the recorded offset', () => {
  const stage = stageCmd(v2.manifest);
  let r = step(initial, command(stage), ctx);
  r = step(r.state, { kind: 'chunk-stored', now: NOW, stage: hexId(stage), end: 100 }, ctx);
  const rec = step(r.state, { kind: 'started', now: NOW, current: 'a' }, ctx);
  assert.equal(kinds(rec.effects), ['record', 'reset-staging', 'report']);
  assert.equal(rec.effects[1], { kind: 'reset-staging', length: 100 });
  assert.equal((onlyReport(rec.effects) as { want?: unknown }).want, {
    offset: 100,
    length: v2.artifact.length - 100,
  });
});

it('activate at a future time waits for its timer; cancel of the stage drops it all', () => {
  const { state, stage } = staged();
  const later = activateCmd(NOW + 60_000);
  const waiting = step(state, command(later), ctx);
  assert.equal(waiting.effects, []);
  assert.is(nextDue(waiting.state), NOW + 60_000);
  assert.equal(step(waiting.state, { kind: 'timer', now: NOW + 59_999 }, ctx).effects, []);
  assert.equal(kinds(step(waiting.state, { kind: 'timer', now: NOW + 60_000 }, ctx).effects), [
    'record',
    'switch',
  ]);
  const cancelled = step(waiting.state, command(cancelCmd(stage.id)), ctx);
  assert.equal(kinds(cancelled.effects), ['discard-unpacked', 'reset-staging', 'clear-slot', 'report']);
  const rep = onlyReport(cancelled.effects);
  assert.equal(
    [rep.state, toHex(rep.command)],
    ['cancelled', hexId(stage)],
    'the report names the stage, not the cancel',
  );
  assert.is(cancelled.state.slots.b, undefined);
  assert.is(nextDue(cancelled.state), undefined);
});

it('operations: once per id, at their time, cancellable until they start, unknown ones unsupported', () => {
  const op = operateCmd('recipe', NOW + 1000, new Map([['recipe', 'B']]));
  let r = step(initial, command(op), ctx);
  assert.equal(r.effects, []);
  assert.is(nextDue(r.state), NOW + 1000);
  assert.equal(step(r.state, command(op), ctx).effects, [], 'a repeated id is not scheduled twice');
  const run = step(r.state, { kind: 'timer', now: NOW + 1000 }, ctx);
  assert.equal(kinds(run.effects), ['run-operation']);
  assert.is(run.state.operations[hexId(op)]?.phase, 'running');
  r = step(
    run.state,
    { kind: 'operation-finished', now: NOW + 1100, id: hexId(op), ok: true, detail: 'exited 0' },
    ctx,
  );
  assert.is(onlyReport(r.effects).state, 'done');
  assert.equal(kinds(step(r.state, command(op), ctx).effects), ['report'], 'answered, never run again');
  // Interrupted by a restart: reported failed, not run again.
  const interrupted = step(run.state, { kind: 'started', now: NOW + 2000, current: 'a' }, ctx);
  assert.is(reports(interrupted.effects)[0]?.state, 'failed');
  assert.equal(interrupted.state.operations, {});
  const other = operateCmd('recipe', NOW + 5000);
  const scheduled = step(initial, command(other), ctx).state;
  // The agent was down at its time: not run late, reported failed; still ahead: kept.
  const missed = step(scheduled, { kind: 'started', now: NOW + 6000, current: 'a' }, ctx);
  assert.equal(kinds(missed.effects), ['report', 'record']);
  assert.equal(
    [onlyReport(missed.effects).state, onlyReport(missed.effects).detail],
    ['failed', `the agent was not running at ${new Date(NOW + 5000).toISOString()}; not run late`],
  );
  assert.equal(missed.state.operations, {});
  const kept = step(scheduled, { kind: 'started', now: NOW + 4000, current: 'a' }, ctx);
  assert.equal(kept.state.operations, scheduled.operations);
  assert.is(nextDue(kept.state), NOW + 5000);
  const c = step(scheduled, command(cancelCmd(other.id)), ctx);
  assert.equal(
    [onlyReport(c.effects).state, toHex(onlyReport(c.effects).command)],
    ['cancelled', hexId(other)],
  );
  const unknown = step(initial, command(operateCmd('reboot', NOW)), ctx);
  assert.is((onlyReport(unknown.effects) as { code?: string }).code, 'unsupported');
});

it('commands the state does not allow: nothing staged, nothing activated, busy', () => {
  const nothing = step(initial, command(activateCmd()), ctx);
  assert.is((onlyReport(nothing.effects) as { code?: string }).code, 'unsupported');
  assert.is(
    (onlyReport(step(initial, command(commitCmd()), ctx).effects) as { code?: string }).code,
    'unsupported',
  );
  const { r } = activated();
  assert.is(
    (onlyReport(step(r.state, command(operateCmd('recipe', NOW)), ctx).effects) as { code?: string }).code,
    'busy',
  );
  assert.is(
    (onlyReport(step(r.state, command(rollbackCmd()), ctx).effects) as { code?: string }).code,
    'busy',
  );
});

it.run();
