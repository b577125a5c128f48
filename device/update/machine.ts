import { createHash } from 'node:crypto';
import { encodeCbor } from '../../shared/cbor/encode.ts';
import type { ReportCode } from '../../shared/protocol/codes.ts';
import {
  type Command,
  MAX_CHUNK_BYTES,
  type Report,
  type StageCommand,
  type Want,
} from '../../shared/protocol/messages.ts';
import {
  checkNotExpired,
  openRelease,
  ReleaseError,
  type TrustedKey,
} from '../../shared/protocol/release-manifest.ts';
import { fromHex, toHex } from '../../shared/tpm/bytes.ts';
import {
  DONE_KEPT,
  type Job,
  type Outcome,
  otherSlot,
  type SlotName,
  type StagedRelease,
  type UpdateState,
} from './state.ts';

// A device's part in a rollout (PROTOCOL.md §6), as a pure function: (state, event) → (state,
// effects). Events are commands from the gateway, the agent's start, timers, and the results of
// effects; effects are what the executor (executor.ts) does to files, the TPM and processes, in
// order, after it has persisted the new state. Nothing here reads a clock, a file or a key store:
// time comes in the events, the trusted keys and configuration in the context. The states of a
// member and its transitions are drawn in docs/rollouts.md.
//
// Two rules carry the safety argument:
// - measure before run: the tree about to run is extended into swPcr (`record`) before `current`
//   points to it (`switch`) and before anything is restarted, going forward and going back;
// - write-ahead: a phase is persisted before its effects, so a start after a power cut knows what
//   may have been done. A switch that was interrupted, or a release never judged healthy, is
//   undone (`started`); only the restart the agent makes of itself is expected and continued.

export interface MachineContext {
  /** The software this device updates (update.json `software.name`). */
  readonly software: string;
  /** The agent itself is that software: a restart is the agent exiting. */
  readonly agent: boolean;
  /** Release keys pinned at provisioning (agent.json `releaseKeys`). */
  readonly keys: readonly TrustedKey[];
  /** Health window when a release names none. */
  readonly healthWindowMs: number;
  /** Operation names a handler is configured for. */
  readonly operations: ReadonlySet<string>;
}

export type Event =
  /** The agent started; `current` is the slot the `current` link really points to. */
  | { readonly kind: 'started'; readonly now: number; readonly current: SlotName }
  | { readonly kind: 'command'; readonly now: number; readonly command: Command }
  | { readonly kind: 'timer'; readonly now: number }
  /** Artifact bytes [0, end) are durably in the staging file. */
  | { readonly kind: 'chunk-stored'; readonly now: number; readonly stage: string; readonly end: number }
  | {
      readonly kind: 'artifact-checked';
      readonly now: number;
      readonly stage: string;
      readonly size: number;
      readonly sha256: string;
    }
  /** The staged artifact is unpacked aside (not yet in a slot); `digest` is its tree's. */
  | { readonly kind: 'unpacked'; readonly now: number; readonly stage: string; readonly digest: string }
  /** The unpacked tree replaced the slot's content. */
  | { readonly kind: 'placed'; readonly now: number; readonly stage: string }
  | { readonly kind: 'switched'; readonly now: number; readonly slot: SlotName }
  | {
      readonly kind: 'health';
      readonly now: number;
      readonly activate: string;
      readonly ok: boolean;
      readonly detail: string;
    }
  | {
      readonly kind: 'operation-finished';
      readonly now: number;
      readonly id: string;
      readonly ok: boolean;
      readonly detail: string;
    }
  /** An effect threw; the executor ran none of the effects after it. */
  | {
      readonly kind: 'effect-failed';
      readonly now: number;
      readonly effect: Effect['kind'];
      readonly detail: string;
    };

export type Effect =
  | { readonly kind: 'report'; readonly report: Report }
  /** Cut the staging file to `length` bytes (0: empty it). */
  | { readonly kind: 'reset-staging'; readonly length: number }
  | {
      readonly kind: 'write-chunk';
      readonly stage: string;
      readonly offset: number;
      readonly data: Uint8Array;
    }
  /** Hash the staging file → artifact-checked. */
  | { readonly kind: 'check-artifact'; readonly stage: string }
  /** Unpack the staging file aside, measuring it as `name` `version` → unpacked. */
  | { readonly kind: 'unpack'; readonly stage: string; readonly name: string; readonly version: string }
  /** Replace `slot` with the tree unpacked aside, if there is one → placed. */
  | { readonly kind: 'place-unpacked'; readonly stage: string; readonly slot: SlotName }
  | { readonly kind: 'discard-unpacked' }
  | { readonly kind: 'clear-slot'; readonly slot: SlotName }
  /** Measure `slot` as `name` `version` and extend swPcr through the software log. */
  | { readonly kind: 'record'; readonly slot: SlotName; readonly name: string; readonly version: string }
  /** Point `current` to `slot`, atomically → switched. */
  | { readonly kind: 'switch'; readonly slot: SlotName }
  /** Restart the software (or exit the agent, when it is the software). */
  | { readonly kind: 'restart' }
  /** Probe the software's health for `windowMs` → health. */
  | { readonly kind: 'watch-health'; readonly activate: string; readonly windowMs: number }
  /** Run the operation's handler → operation-finished. */
  | {
      readonly kind: 'run-operation';
      readonly id: string;
      readonly name: string;
      readonly args: string;
      readonly token: string;
    };

export interface Step {
  readonly state: UpdateState;
  readonly effects: readonly Effect[];
}

const sha256hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Software claim for reports: what the current slot holds. */
function running(s: UpdateState, ctx: MachineContext) {
  const c = s.slots[s.current];
  return { name: c?.name ?? ctx.software, version: c?.version ?? 'unknown' };
}

function report(s: UpdateState, ctx: MachineContext, id: string, o: Outcome, want?: Want): Effect {
  const base = {
    t: 'report' as const,
    command: fromHex(id),
    sw: running(s, ctx),
    ...(o.detail !== undefined && { detail: o.detail }),
  };
  const r: Report =
    o.state === 'fetching'
      ? { ...base, state: o.state, ...(want && { want }) }
      : o.state === 'failed' || o.state === 'rolled-back'
        ? { ...base, state: o.state, ...(o.code !== undefined && { code: o.code }) }
        : { ...base, state: o.state };
  return { kind: 'report', report: r };
}

/** Records the outcome of command `id` (for repeated ids) and reports it. */
function settle(s: UpdateState, ctx: MachineContext, id: string, o: Outcome): Step {
  const done = [...s.done.filter((d) => d.id !== id), { id, ...o }].slice(-DONE_KEPT);
  const state = { ...s, done };
  return { state, effects: [report(state, ctx, id, o)] };
}

const failed = (code: ReportCode, detail: string): Outcome => ({ state: 'failed', code, detail });

/**
 * A command that needs the update `needed` while it is not: `busy` when another phase is under
 * way, `unsupported` when there is no update at all (§6.3 has no code of its own for either).
 */
const notNow = (job: Job | undefined, needed: Job['phase'], op: string): Outcome =>
  job
    ? failed('busy', `the update is ${job.phase}, not ${needed}`)
    : failed('unsupported', `nothing is ${needed} to ${op}`);

function wantOf(job: Extract<Job, { phase: 'fetching' }>): Want {
  return { offset: job.offset, length: Math.min(MAX_CHUNK_BYTES, job.release.size - job.offset) };
}

const withJob = (s: UpdateState, job: Job | undefined): UpdateState => {
  const { job: _, ...rest } = s;
  return job === undefined ? rest : { ...rest, job };
};

const then = (a: Step, ...effects: Effect[]): Step => ({
  state: a.state,
  effects: [...a.effects, ...effects],
});

type StagingJob = Extract<Job, { phase: 'fetching' | 'unpacking' | 'staged' }>;
const isStaging = (j: Job | undefined): j is StagingJob =>
  j?.phase === 'fetching' || j?.phase === 'unpacking' || j?.phase === 'staged';

/**
 * Whether a staged release may be fetched at all (PROTOCOL.md §6.2 `stage`): signed by a pinned
 * key, for the software this device runs, not below its committed floor, not expired.
 */
export function checkStage(
  manifest: Uint8Array,
  s: UpdateState,
  ctx: MachineContext,
  now: number,
): StagedRelease {
  const { manifest: m } = openRelease(manifest, ctx.keys);
  if (m.name !== ctx.software)
    throw new ReleaseError('unsupported', `this device updates ${ctx.software}, not ${m.name}`);
  const floor = s.floors[m.name];
  const digest = toHex(m.digest);
  if (floor !== undefined && (m.seq < floor.seq || (m.seq === floor.seq && digest !== floor.digest)))
    throw new ReleaseError(
      'rollback-refused',
      `${m.name} seq ${m.seq} is below the committed floor seq ${floor.seq}${m.seq === floor.seq ? ' (same seq, another release)' : ''}`,
    );
  checkNotExpired(m, now);
  return {
    name: m.name,
    version: m.version,
    seq: m.seq,
    digest,
    size: m.artifact.size,
    sha256: toHex(m.artifact.sha256),
    ...(m.health && { healthWindowMs: m.health.windowMs }),
    manifest: sha256hex(manifest),
  };
}

/** Ends a staging that did not make it: nothing of it stays, the slots are as before. */
function dropStaging(s: UpdateState, ctx: MachineContext, job: StagingJob, o: Outcome): Step {
  let state = withJob(s, undefined);
  const effects: Effect[] = [{ kind: 'discard-unpacked' }, { kind: 'reset-staging', length: 0 }];
  if (job.phase === 'staged') {
    // The slot already holds the staged tree: emptied, so that nothing unactivated lingers.
    const { [job.slot]: _, ...slots } = state.slots;
    state = { ...state, slots };
    effects.push({ kind: 'clear-slot', slot: job.slot });
    if (job.activate)
      state = { ...state, done: [...state.done, { id: job.activate.id, state: 'cancelled' }] };
  }
  const settled = settle(state, ctx, job.stage, o);
  return { state: settled.state, effects: [...effects, ...settled.effects] };
}

function startActivation(s: UpdateState, job: Extract<Job, { phase: 'staged' }>, activate: string): Step {
  const next: Job = {
    phase: 'activating',
    stage: job.stage,
    activate,
    release: job.release,
    from: s.current,
    to: job.slot,
  };
  const { name, version } = job.release;
  return {
    state: withJob(s, next),
    effects: [
      { kind: 'record', slot: job.slot, name, version },
      { kind: 'switch', slot: job.slot },
    ],
  };
}

function rollBack(
  s: UpdateState,
  job: { from: SlotName; to: SlotName },
  command: string,
  detail: string,
  code?: ReportCode,
): Step {
  const from = s.slots[job.from];
  return {
    state: withJob(s, {
      phase: 'rolling-back',
      command,
      from: job.from,
      to: job.to,
      detail,
      ...(code !== undefined && { code }),
    }),
    effects: [
      ...(from ? [{ kind: 'record', slot: job.from, name: from.name, version: from.version } as const] : []),
      { kind: 'switch', slot: job.from },
    ],
  };
}

const nothing = (s: UpdateState): Step => ({ state: s, effects: [] });

/** The `activate` command a job is carrying out or waiting to. */
function activateOf(job: Job): string | undefined {
  if (job.phase === 'staged') return job.activate?.id;
  return 'activate' in job ? job.activate : undefined;
}

/** The software running now, when it is what the floor names: committed. */
function committedNow(s: UpdateState) {
  const now = s.slots[s.current];
  const floor = now && s.floors[now.name];
  return now && floor && floor.digest === now.digest ? { ...now, seq: floor.seq } : undefined;
}

function onStage(s: UpdateState, ctx: MachineContext, c: StageCommand, id: string, now: number): Step {
  const job = s.job;
  if (job !== undefined) {
    if (isStaging(job) && job.release.manifest === sha256hex(c.manifest)) {
      // The same release under a new command id (a retried or resumed rollout): carry on.
      const adopted = { ...job, stage: id, rollout: c.rollout };
      return progress(withJob(s, adopted), ctx, adopted);
    }
    const what = 'release' in job ? `${job.release.name} ${job.release.version}` : 'a rollback';
    return settle(s, ctx, id, failed('busy', `${what} is ${job.phase}; finish, commit or cancel it first`));
  }
  let release: StagedRelease;
  try {
    release = checkStage(c.manifest, s, ctx, now);
  } catch (e) {
    if (e instanceof ReleaseError) return settle(s, ctx, id, failed(e.code, e.detail));
    throw e;
  }
  const next: Job = {
    phase: 'fetching',
    stage: id,
    rollout: c.rollout,
    release,
    slot: otherSlot(s.current),
    offset: 0,
  };
  const reset: Effect = { kind: 'reset-staging', length: 0 };
  if (release.size === 0)
    return {
      state: withJob(s, { ...next, phase: 'unpacking' }),
      effects: [reset, { kind: 'check-artifact', stage: id }],
    };
  return {
    state: withJob(s, next),
    effects: [reset, report(s, ctx, id, { state: 'fetching' }, wantOf(next))],
  };
}

/** What a repeated `stage` id is answered with: the staging's progress. */
function progress(s: UpdateState, ctx: MachineContext, job: Job): Step {
  if (job.phase === 'fetching')
    return { state: s, effects: [report(s, ctx, job.stage, { state: 'fetching' }, wantOf(job))] };
  if (job.phase === 'unpacking' || job.phase === 'rolling-back') return nothing(s);
  return { state: s, effects: [report(s, ctx, job.stage, { state: 'staged' })] };
}

function onCommand(s: UpdateState, ctx: MachineContext, c: Command, now: number): Step {
  const id = toHex(c.id);
  const prior = s.done.find((d) => d.id === id);
  if (prior && c.op !== 'cancel') return { state: s, effects: [report(s, ctx, id, prior)] };
  const job = s.job;
  switch (c.op) {
    case 'stage':
      if (job && 'stage' in job && job.stage === id) return progress(s, ctx, job);
      return onStage(s, ctx, c, id, now);
    case 'chunk': {
      // Chunks of a staging no longer fetched are late duplicates: nothing to do, nothing to say.
      if (job?.phase !== 'fetching' || job.stage !== toHex(c.command)) return nothing(s);
      if (c.offset !== job.offset) return progress(s, ctx, job);
      if (c.offset + c.data.length > job.release.size)
        return dropStaging(
          s,
          ctx,
          job,
          failed(
            'artifact-invalid',
            `a chunk of ${c.data.length} bytes at ${c.offset} goes past the artifact's ${job.release.size} bytes`,
          ),
        );
      return {
        state: s,
        effects: [{ kind: 'write-chunk', stage: job.stage, offset: c.offset, data: c.data }],
      };
    }
    case 'activate': {
      if (job && activateOf(job) === id) return nothing(s);
      if (job?.phase !== 'staged') return settle(s, ctx, id, notNow(job, 'staged', 'activate'));
      if (c.at > now) return nothing(withJob(s, { ...job, activate: { id, at: c.at } }));
      return startActivation(s, job, id);
    }
    case 'commit': {
      if (job?.phase === 'activated') {
        const { [job.from]: _, ...slots } = s.slots;
        const floors = {
          ...s.floors,
          [job.release.name]: { seq: job.release.seq, digest: job.release.digest },
        };
        const state = {
          ...withJob(s, undefined),
          slots,
          floors,
          done: [...s.done, { id: job.stage, state: 'staged' as const }],
        };
        return then(settle(state, ctx, id, { state: 'committed' }), { kind: 'clear-slot', slot: job.from });
      }
      const committed = committedNow(s);
      if (!job && committed)
        return settle(s, ctx, id, {
          state: 'committed',
          detail: `${committed.name} ${committed.version} is committed already`,
        });
      return settle(s, ctx, id, notNow(job, 'activated', 'commit'));
    }
    case 'rollback': {
      if (job?.phase === 'activated')
        return rollBack(s, job, id, `back to ${s.slots[job.from]?.version ?? job.from}`);
      if (isStaging(job)) {
        const dropped = dropStaging(s, ctx, job, {
          state: 'failed',
          detail: 'dropped by a rollback before activation',
        });
        const r = settle(dropped.state, ctx, id, {
          state: 'rolled-back',
          detail: 'nothing was activated; the staged release was dropped',
        });
        return { state: r.state, effects: [...dropped.effects, ...r.effects] };
      }
      if (job) return settle(s, ctx, id, failed('busy', `the update is ${job.phase}`));
      const committed = committedNow(s);
      if (committed)
        return settle(
          s,
          ctx,
          id,
          failed(
            'rollback-refused',
            `${committed.name} ${committed.version} (seq ${committed.seq}) is committed: it is the floor`,
          ),
        );
      return settle(s, ctx, id, { state: 'rolled-back', detail: 'nothing to roll back' });
    }
    case 'cancel': {
      const target = toHex(c.command);
      const reached = s.done.find((d) => d.id === target);
      if (reached) return { state: s, effects: [report(s, ctx, target, reached)] };
      if (isStaging(job) && job.stage === target) return dropStaging(s, ctx, job, { state: 'cancelled' });
      if (job && 'stage' in job && job.stage === target) return progress(s, ctx, job);
      const op = s.operations[target];
      if (op?.phase === 'running') return nothing(s);
      if (op) {
        const { [target]: _, ...operations } = s.operations;
        return settle({ ...s, operations }, ctx, target, { state: 'cancelled' });
      }
      return settle(s, ctx, id, failed('unsupported', `no stage or operate ${target} to cancel`));
    }
    case 'operate': {
      const { name } = c.operation;
      if (!ctx.operations.has(name))
        return settle(s, ctx, id, failed('unsupported', `no handler for operation ${name} on this device`));
      if (s.operations[id]) return nothing(s);
      if (job && (job.phase === 'activating' || job.phase === 'health' || job.phase === 'rolling-back'))
        return settle(s, ctx, id, failed('busy', `the update is ${job.phase}`));
      const op = {
        name,
        // The handler gets the args as CBOR, exactly as sent: its own decoder says what they mean.
        args: toHex(encodeCbor(c.operation.args)),
        token: toHex(c.operation.token),
        at: c.at,
        phase: 'scheduled' as const,
      };
      const state = { ...s, operations: { ...s.operations, [id]: op } };
      return c.at <= now ? runDue(state, now) : nothing(state);
    }
  }
}

/** Starts every scheduled operation whose time has come. */
function runDue(s: UpdateState, now: number): Step {
  const effects: Effect[] = [];
  const operations = { ...s.operations };
  for (const [id, op] of Object.entries(s.operations)) {
    if (op.phase !== 'scheduled' || op.at > now) continue;
    operations[id] = { ...op, phase: 'running' };
    effects.push({ kind: 'run-operation', id, name: op.name, args: op.args, token: op.token });
  }
  return { state: { ...s, operations }, effects };
}

/** When the executor must deliver a `timer` event next; undefined when nothing waits. */
export function nextDue(s: UpdateState): number | undefined {
  const times = Object.values(s.operations)
    .filter((o) => o.phase === 'scheduled')
    .map((o) => o.at);
  if (s.job?.phase === 'staged' && s.job.activate) times.push(s.job.activate.at);
  return times.length === 0 ? undefined : Math.min(...times);
}

function onStarted(s0: UpdateState, ctx: MachineContext, actual: SlotName, now: number): Step {
  const job = s0.job;
  // A switch is in flight only in these phases; otherwise the link says what runs.
  const switching = job?.phase === 'activating' || job?.phase === 'rolling-back';
  let s = switching ? s0 : { ...s0, current: actual };
  const effects: Effect[] = [];
  const current = s.slots[s.current];
  const recordCurrent = (): Effect[] =>
    current ? [{ kind: 'record', slot: s.current, name: current.name, version: current.version }] : [];
  // Operations that were running when the agent stopped are not run again: once per command id.
  // Those whose time passed while the agent was not running are not run late either: an operation
  // is coordinated in time with the rest of the swarm, and the gateway may have called it off.
  for (const [id, op] of Object.entries(s.operations)) {
    if (op.phase === 'scheduled' && op.at > now) continue;
    const { [id]: _, ...operations } = s.operations;
    const r = settle({ ...s, operations }, ctx, id, {
      state: 'failed',
      detail:
        op.phase === 'running'
          ? 'interrupted by a restart of the agent; not run again'
          : `the agent was not running at ${new Date(op.at).toISOString()}; not run late`,
    });
    s = r.state;
    effects.push(...r.effects);
  }
  for (const id of s.outbox) {
    const o = s.done.find((d) => d.id === id);
    if (o) effects.push(report(s, ctx, id, o));
  }
  s = { ...s, outbox: [] };
  const interrupted = 'the agent stopped before the release was judged healthy; switched back';
  let tail: Step;
  switch (job?.phase) {
    case undefined:
    case 'activated':
      tail = { state: s, effects: recordCurrent() };
      break;
    case 'fetching':
      tail = {
        state: s,
        effects: [
          ...recordCurrent(),
          { kind: 'reset-staging', length: job.offset },
          report(s, ctx, job.stage, { state: 'fetching' }, wantOf(job)),
        ],
      };
      break;
    case 'unpacking':
      tail = {
        state: s,
        effects: [
          ...recordCurrent(),
          { kind: 'discard-unpacked' },
          { kind: 'check-artifact', stage: job.stage },
        ],
      };
      break;
    case 'staged':
      // The unpacked tree may not have reached its slot before the stop: placing it is idempotent.
      tail = {
        state: s,
        effects: [...recordCurrent(), { kind: 'place-unpacked', stage: job.stage, slot: job.slot }],
      };
      break;
    case 'activating':
      tail = rollBack(s, job, job.activate, interrupted, 'health-failed');
      break;
    case 'health':
      tail = job.plannedRestart
        ? {
            state: withJob(s, { ...job, plannedRestart: false, since: now }),
            effects: [
              {
                kind: 'watch-health',
                activate: job.activate,
                windowMs: job.release.healthWindowMs ?? ctx.healthWindowMs,
              },
            ],
          }
        : rollBack(s, job, job.activate, interrupted, 'health-failed');
      break;
    case 'rolling-back':
      tail = rollBack(s, job, job.command, job.detail, job.code);
      break;
  }
  return { state: tail.state, effects: [...effects, ...tail.effects] };
}

function onEffectFailed(s: UpdateState, ctx: MachineContext, effect: Effect['kind'], detail: string): Step {
  const job = s.job;
  if (!job) return nothing(s);
  if (isStaging(job)) {
    if (job.phase === 'staged' && effect !== 'place-unpacked') return nothing(s);
    return dropStaging(s, ctx, job, failed('artifact-invalid', `${effect}: ${detail}`));
  }
  if (job.phase === 'activating' || job.phase === 'health')
    return rollBack(s, job, job.activate, `${effect} failed: ${detail}; switched back`, 'health-failed');
  if (job.phase === 'rolling-back')
    // Stays rolling back: the next start of the agent tries again.
    return {
      state: s,
      effects: [
        report(s, ctx, job.command, {
          state: 'failed',
          detail: `could not switch back (${effect}: ${detail}); the agent retries at its next start`,
        }),
      ],
    };
  return nothing(s);
}

export function step(s: UpdateState, e: Event, ctx: MachineContext): Step {
  const job = s.job;
  switch (e.kind) {
    case 'started':
      return onStarted(s, ctx, e.current, e.now);
    case 'command':
      return onCommand(s, ctx, e.command, e.now);
    case 'timer': {
      const ran = runDue(s, e.now);
      const j = ran.state.job;
      if (j?.phase === 'staged' && j.activate && j.activate.at <= e.now) {
        const started = startActivation(ran.state, j, j.activate.id);
        return { state: started.state, effects: [...ran.effects, ...started.effects] };
      }
      return ran;
    }
    case 'chunk-stored': {
      if (job?.phase !== 'fetching' || job.stage !== e.stage) return nothing(s);
      const next = { ...job, offset: e.end };
      if (e.end < job.release.size)
        return {
          state: withJob(s, next),
          effects: [report(s, ctx, job.stage, { state: 'fetching' }, wantOf(next))],
        };
      return {
        state: withJob(s, { ...job, phase: 'unpacking' }),
        effects: [{ kind: 'check-artifact', stage: job.stage }],
      };
    }
    case 'artifact-checked': {
      if (job?.phase !== 'unpacking' || job.stage !== e.stage) return nothing(s);
      const r = job.release;
      if (e.size !== r.size || e.sha256 !== r.sha256)
        return dropStaging(
          s,
          ctx,
          job,
          failed(
            'artifact-invalid',
            `the artifact is ${e.size} bytes with SHA-256 ${e.sha256}; the manifest says ${r.size} bytes, ${r.sha256}`,
          ),
        );
      return { state: s, effects: [{ kind: 'unpack', stage: job.stage, name: r.name, version: r.version }] };
    }
    case 'unpacked': {
      if (job?.phase !== 'unpacking' || job.stage !== e.stage) return nothing(s);
      if (e.digest !== job.release.digest)
        return dropStaging(
          s,
          ctx,
          job,
          failed(
            'artifact-invalid',
            `the unpacked tree measures to ${e.digest}; the manifest says ${job.release.digest}`,
          ),
        );
      return { state: s, effects: [{ kind: 'place-unpacked', stage: job.stage, slot: job.slot }] };
    }
    case 'placed': {
      if (job?.phase !== 'unpacking' || job.stage !== e.stage) return nothing(s);
      const { name, version, digest, seq } = job.release;
      const state = withJob(
        { ...s, slots: { ...s.slots, [job.slot]: { name, version, digest, seq } } },
        { ...job, phase: 'staged' },
      );
      return {
        state,
        effects: [{ kind: 'reset-staging', length: 0 }, report(state, ctx, job.stage, { state: 'staged' })],
      };
    }
    case 'switched': {
      if (job?.phase === 'activating' && e.slot === job.to) {
        const state = withJob(
          { ...s, current: job.to },
          { ...job, phase: 'health', since: e.now, plannedRestart: ctx.agent },
        );
        const watch: Effect = {
          kind: 'watch-health',
          activate: job.activate,
          windowMs: job.release.healthWindowMs ?? ctx.healthWindowMs,
        };
        return { state, effects: ctx.agent ? [{ kind: 'restart' }] : [{ kind: 'restart' }, watch] };
      }
      if (job?.phase === 'rolling-back' && e.slot === job.from) {
        const base = withJob({ ...s, current: job.from }, undefined);
        const settled = settle(
          ctx.agent ? { ...base, outbox: [...base.outbox, job.command] } : base,
          ctx,
          job.command,
          {
            state: 'rolled-back',
            detail: job.detail,
            ...(job.code !== undefined && { code: job.code }),
          },
        );
        return then(settled, { kind: 'restart' });
      }
      return nothing(s);
    }
    case 'health': {
      if (job?.phase !== 'health' || job.activate !== e.activate) return nothing(s);
      if (!e.ok)
        return rollBack(
          s,
          job,
          job.activate,
          `health check failed: ${e.detail}; switched back`,
          'health-failed',
        );
      return settle(withJob(s, { ...job, phase: 'activated' }), ctx, job.activate, { state: 'activated' });
    }
    case 'operation-finished': {
      if (!s.operations[e.id]) return nothing(s);
      const { [e.id]: _, ...operations } = s.operations;
      return settle(
        { ...s, operations },
        ctx,
        e.id,
        e.ok ? { state: 'done', detail: e.detail } : { state: 'failed', detail: e.detail },
      );
    }
    case 'effect-failed':
      return onEffectFailed(s, ctx, e.effect, e.detail);
  }
}
