import type { RoundReason } from '../../shared/protocol/index.ts';
import {
  type CommandEffect,
  FAILED,
  FINISHED,
  type InFlight,
  type Member,
  type MemberState,
  type Operation,
  type Rollout,
  type RolloutPhase,
  type RolloutSpec,
} from './model.ts';
import { barrierSize, waveSizes } from './quota.ts';

export type { CommandEffect } from './model.ts';

// The rollout state machine (PROTOCOL.md §6.4), pure: (rollout, event, context) → (rollout,
// effects). The engine (engine.ts) turns effects into commands and swarm rounds and feeds back
// what happens. Convergence comes only from an appraised round of reason `swarm` issued after a
// member's `activate`; a report alone never converges anyone. Every command sent stays in
// `inflight` until a report ends it or its deadline passes, so that the state alone says what a
// restarted gateway must send again, with the same id.

export type ReportState =
  | 'fetching'
  | 'staged'
  | 'activated'
  | 'rolled-back'
  | 'committed'
  | 'done'
  | 'cancelled'
  | 'failed';

export type RolloutEvent =
  | { readonly kind: 'start' }
  /** The executor could not ask the member: no attested connection in good standing. */
  | { readonly kind: 'unreachable'; readonly member: string; readonly detail: string }
  | {
      readonly kind: 'report';
      readonly member: string;
      readonly command: string;
      readonly state: ReportState;
      readonly code?: string;
      readonly detail?: string;
    }
  /** A round of the member settled; `measured` is the digest of the release's name in its log. */
  | {
      readonly kind: 'round';
      readonly member: string;
      readonly issuedAt: number;
      readonly reason: RoundReason;
      /** False when no evidence came (deadline passed, connection closed): it shows nothing. */
      readonly answered?: boolean;
      readonly affirming: boolean;
      readonly measured?: string;
      readonly code?: string;
    }
  /** The member attested on a connection (after a restart, or back online). */
  | { readonly kind: 'attested'; readonly member: string }
  /** A device that joined the swarm after the start attested: it joins the trailing wave. */
  | { readonly kind: 'join'; readonly member: string }
  /** The member's posture is no longer fresh and good, or its attested connection is gone. */
  | { readonly kind: 'lost'; readonly member: string }
  /** Time passed: deadlines due now fail their step. */
  | { readonly kind: 'tick' }
  | { readonly kind: 'pause' | 'resume' | 'cancel' | 'rollback' | 'commit' }
  | {
      readonly kind: 'operate';
      readonly name: string;
      readonly at: number;
      readonly exp: number;
      /** CBOR of the args, hex. */
      readonly args: string;
      /** The operate token, hex, signed over `members`. */
      readonly token: string;
      /** The members the token names: the barrier's converged members when it was signed. */
      readonly members: readonly string[];
    };

export type Effect =
  | { readonly kind: 'send'; readonly member: string; readonly id: string; readonly command: CommandEffect }
  /** Issue a round with reason `swarm` on the member's attested connection. */
  | { readonly kind: 'swarm-round'; readonly member: string };

export interface StepContext {
  readonly now: number;
  /** A fresh command or operation id (32 hex digits). */
  readonly newId: () => string;
  /** Whether the member's posture is fresh and good on an attested connection now. */
  readonly fresh: (member: string) => boolean;
}

export interface Step {
  readonly rollout: Rollout;
  readonly effects: readonly Effect[];
  /** Why an operator action was refused (the rollout is unchanged then). */
  readonly refused?: string;
}

/** Report states that end a command of each op (a `cancel` is answered under its own id only when refused). */
const TERMINAL: Readonly<Record<CommandEffect['op'], ReadonlySet<ReportState>>> = {
  stage: new Set(['staged', 'failed', 'cancelled', 'rolled-back']),
  activate: new Set(['activated', 'rolled-back', 'failed', 'cancelled']),
  commit: new Set(['committed', 'failed']),
  rollback: new Set(['rolled-back', 'failed']),
  operate: new Set(['done', 'failed', 'cancelled']),
  cancel: new Set(['failed']),
};

/** Phases in which operator actions other than rollback apply. */
const ACTIVE = new Set<RolloutPhase>(['running', 'paused', 'completed']);

/** A new rollout over `members` (sorted: the canary is the first). */
export function createRollout(spec: RolloutSpec, members: readonly string[], now: number): Rollout {
  const sorted = [...new Set(members)].sort();
  const sizes = waveSizes(spec.waves, sorted.length);
  const all: Record<string, Member> = {};
  let i = 0;
  sizes.forEach((size, wave) => {
    for (let k = 0; k < size; k++, i++) all[sorted[i]!] = { id: sorted[i]!, wave, state: 'waiting' };
  });
  return {
    spec,
    phase: 'running',
    waves: sizes.length,
    wavesStarted: 0,
    members: all,
    operations: [],
    inflight: {},
    updatedAt: now,
  };
}

/** The barrier: enough members (and every required one) converged on the target and fresh. */
export function barrier(
  r: Rollout,
  fresh: (member: string) => boolean,
): {
  readonly holds: boolean;
  readonly good: readonly string[];
  readonly missing: readonly string[];
  readonly needed: number;
} {
  const members = Object.values(r.members);
  const good = members
    .filter(
      (m) =>
        (m.state === 'converged' || m.state === 'committed') &&
        m.measured === r.spec.release.digest &&
        fresh(m.id),
    )
    .map((m) => m.id);
  const goodSet = new Set(good);
  const missing = members.filter((m) => !goodSet.has(m.id)).map((m) => m.id);
  const requiredOk = r.spec.required.every((id) => goodSet.has(id));
  const needed = barrierSize(r.spec, members.length);
  return { holds: requiredOk && good.length >= needed && good.length > 0, good, missing, needed };
}

/** The earliest time a tick has something to do: a step's or a command's deadline. */
export function nextDeadline(r: Rollout): number | undefined {
  const times = Object.values(r.inflight).map((f) => f.deadlineAt);
  for (const m of Object.values(r.members))
    if (m.deadlineAt !== undefined && TIMED.has(m.state)) times.push(m.deadlineAt);
  return times.length === 0 ? undefined : Math.min(...times);
}

/**
 * What is in flight for a member and must go out again when it attests: every command sent to it
 * whose deadline has not passed, except the `operate` of an operation no longer released (its
 * `cancel` goes instead).
 */
export function outstanding(r: Rollout, member: string, now: number): [string, InFlight][] {
  return Object.entries(r.inflight).filter(([, f]) => f.member === member && sendable(r, f, now));
}

/** Whether a command in flight still goes to its member (see outstanding). */
export function sendable(r: Rollout, f: InFlight, now: number): boolean {
  if (f.deadlineAt <= now) return false;
  const c = f.command;
  return c.op !== 'operate' || r.operations.some((o) => o.id === c.operation && o.state === 'released');
}

/** Member states a deadline applies to. */
const TIMED: ReadonlySet<MemberState> = new Set(['staging', 'activating', 'verifying']);

class Stepper {
  readonly effects: Effect[] = [];
  readonly members: Record<string, Member>;
  readonly inflight: Record<string, InFlight>;
  r: Rollout;

  constructor(
    rollout: Rollout,
    readonly ctx: StepContext,
  ) {
    this.r = rollout;
    this.members = { ...rollout.members };
    this.inflight = { ...rollout.inflight };
  }

  set(id: string, change: Partial<Member> & { state: MemberState }): void {
    const { code: _c, detail: _d, deadlineAt: _t, ...rest } = this.members[id]!;
    this.members[id] = { ...rest, ...change } as Member;
  }

  send(member: string, command: CommandEffect): string {
    const id = this.ctx.newId();
    this.effects.push({ kind: 'send', member, id, command });
    this.inflight[id] = { member, command, deadlineAt: this.deadline(command) };
    return id;
  }

  private deadline(c: CommandEffect): number {
    const { now } = this.ctx;
    const t = this.r.spec.timeouts;
    if (c.op === 'stage') return now + t.stageMs;
    if (c.op === 'activate') return now + t.activateMs;
    if (c.op === 'operate') return Math.max(now, c.at) + t.commandMs;
    return now + t.commandMs;
  }

  stage(id: string): void {
    if (!this.ctx.fresh(id)) {
      this.set(id, {
        state: 'absent',
        code: 'absent',
        detail: 'no attested connection in good standing when its wave started',
      });
      return;
    }
    const cmd = this.send(id, { op: 'stage' });
    this.set(id, {
      state: 'staging',
      command: { id: cmd, op: 'stage' },
      deadlineAt: this.ctx.now + this.r.spec.timeouts.stageMs,
    });
  }

  activate(id: string): void {
    const cmd = this.send(id, { op: 'activate', at: this.ctx.now });
    this.set(id, {
      state: 'activating',
      command: { id: cmd, op: 'activate' },
      activatedAt: this.ctx.now,
      deadlineAt: this.ctx.now + this.r.spec.timeouts.activateMs,
    });
  }

  fail(id: string, state: 'failed' | 'rolled-back', code: string, detail?: string): void {
    this.set(id, { state, code, ...(detail !== undefined && { detail }) });
  }

  /** Drops a command from the in-flight set, with the cancels aimed at it. */
  answered(id: string): void {
    delete this.inflight[id];
    for (const [cid, f] of Object.entries(this.inflight))
      if (f.command.op === 'cancel' && f.command.command === id) delete this.inflight[cid];
  }

  /** Starts waves while the current one has met its success share; aborts past the abort share. */
  advance(): void {
    if (this.r.phase !== 'running') return;
    const finished = Object.values(this.members).filter((m) => FINISHED.has(m.state));
    const failed = finished.filter((m) => FAILED.has(m.state));
    const { percent, min } = this.r.spec.abort;
    if (finished.length >= min && finished.length > 0 && (failed.length / finished.length) * 100 > percent) {
      this.r = {
        ...this.r,
        phase: 'aborted',
        why: `${failed.length} of ${finished.length} finished members failed (abort above ${percent}% after ${min})`,
      };
      return;
    }
    while (this.r.wavesStarted < this.r.waves) {
      const current = this.r.wavesStarted - 1;
      if (current >= 0) {
        const wave = Object.values(this.members).filter((m) => m.wave === current);
        const converged = wave.filter((m) => m.state === 'converged' || m.state === 'committed').length;
        if (wave.length > 0 && (converged / wave.length) * 100 < this.r.spec.successPercent) break;
      }
      this.r = { ...this.r, wavesStarted: this.r.wavesStarted + 1 };
      for (const m of Object.values(this.members))
        if (m.wave === this.r.wavesStarted - 1 && m.state === 'waiting') this.stage(m.id);
    }
    // The trailing wave (members back from absence, late joiners) follows the planned ones.
    if (this.r.wavesStarted >= this.r.waves)
      for (const m of Object.values(this.members))
        if (m.wave === this.r.waves && m.state === 'waiting') this.stage(m.id);
    for (const m of Object.values(this.members)) if (m.state === 'staged') this.activate(m.id);
    const rest = Object.values(this.members);
    if (
      this.r.wavesStarted >= this.r.waves &&
      rest.every((m) => FINISHED.has(m.state) || m.state === 'absent')
    )
      this.r = { ...this.r, phase: 'completed' };
  }

  /** A released operation whose barrier broke before its time is cancelled on every member told. */
  guardOperations(): void {
    const b = barrier({ ...this.r, members: this.members }, this.ctx.fresh);
    if (b.holds) return;
    this.r = {
      ...this.r,
      operations: this.r.operations.map((op) => {
        if (op.state !== 'released' || op.at <= this.ctx.now) return op;
        const cancels: Record<string, string> = {};
        for (const [member, command] of Object.entries(op.told))
          if (op.results[member] === undefined)
            cancels[member] = this.send(member, { op: 'cancel', command });
        return {
          ...op,
          state: 'cancelled',
          cancels,
          reasons: [
            `the barrier broke before ${new Date(op.at).toISOString()}: ${b.missing.slice(0, 5).join(', ')} not converged and fresh`,
          ],
        };
      }),
    };
  }

  /** A member's report on an operation it was told. */
  operationReport(opId: string, member: string, e: Extract<RolloutEvent, { kind: 'report' }>): void {
    if (!TERMINAL.operate.has(e.state)) return;
    this.r = {
      ...this.r,
      operations: this.r.operations.map((op) => {
        if (op.id !== opId || op.told[member] !== e.command) return op;
        const outcome = {
          state: e.state,
          ...(e.code !== undefined && { code: e.code }),
          ...(e.detail !== undefined && { detail: e.detail }),
        };
        const results = { ...op.results, [member]: outcome };
        const all = Object.keys(op.told).every((k) => results[k] !== undefined);
        return { ...op, results, ...(all && op.state === 'released' && { state: 'done' as const }) };
      }),
    };
  }

  tick(): void {
    const { now } = this.ctx;
    for (const m of Object.values(this.members)) {
      if (m.deadlineAt === undefined || m.deadlineAt > now || !TIMED.has(m.state)) continue;
      const staging = m.state === 'staging';
      this.fail(
        m.id,
        'failed',
        'timed-out',
        `no ${staging ? 'staged report' : 'converged quote'} by the deadline`,
      );
      if (m.command) this.answered(m.command.id);
      // A staging left running would hold the device busy: it is called off.
      if (staging && m.command) this.send(m.id, { op: 'cancel', command: m.command.id });
    }
    for (const [id, f] of Object.entries(this.inflight)) {
      if (f.deadlineAt > now) continue;
      delete this.inflight[id];
      const c = f.command;
      if (c.op === 'operate')
        this.operationReport(c.operation, f.member, {
          kind: 'report',
          member: f.member,
          command: id,
          state: 'failed',
          code: 'timed-out',
          detail: 'no report on the operation by its deadline',
        });
      const m = this.members[f.member];
      if (c.op === 'rollback' && m && m.command?.id === id && m.state !== 'rolled-back')
        this.fail(m.id, 'failed', 'timed-out', 'no rolled-back report by the deadline');
    }
  }

  done(): Step {
    return {
      rollout: { ...this.r, members: this.members, inflight: this.inflight, updatedAt: this.ctx.now },
      effects: this.effects,
    };
  }
}

const sameSet = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && [...a].sort().every((x, i) => x === [...b].sort()[i]);

export function step(rollout: Rollout, event: RolloutEvent, ctx: StepContext): Step {
  const s = new Stepper(rollout, ctx);
  const refuse = (why: string): Step => ({ rollout, effects: [], refused: why });
  const member = 'member' in event ? s.members[event.member] : undefined;
  if ('member' in event && !member && event.kind !== 'join') return { rollout, effects: [] };
  switch (event.kind) {
    case 'start':
      if (rollout.wavesStarted > 0) return refuse('the rollout has started already');
      break;
    case 'unreachable':
      if (member!.state === 'staging' || member!.state === 'waiting') {
        if (member!.command) s.answered(member!.command.id);
        s.set(member!.id, { state: 'absent', code: 'absent', detail: event.detail });
      }
      break;
    case 'report':
      onReport(s, member!, event);
      break;
    case 'round':
      onRound(s, member!, event);
      break;
    case 'attested':
      if (member!.state === 'absent' && ACTIVE.has(rollout.phase)) {
        // Back online: it joins the trailing wave.
        s.set(member!.id, { state: 'waiting', wave: rollout.waves });
        if (rollout.phase === 'completed') s.r = { ...s.r, phase: 'running' };
      } else if (member!.state === 'verifying') s.effects.push({ kind: 'swarm-round', member: member!.id });
      break;
    case 'join':
      if (member || !ACTIVE.has(rollout.phase)) return { rollout, effects: [] };
      s.members[event.member] = { id: event.member, wave: rollout.waves, state: 'waiting' };
      if (rollout.phase === 'completed') s.r = { ...s.r, phase: 'running' };
      break;
    case 'lost':
      break;
    case 'tick':
      s.tick();
      break;
    case 'pause':
      if (rollout.phase !== 'running') return refuse(`the rollout is ${rollout.phase}, not running`);
      s.r = { ...s.r, phase: 'paused', why: 'paused by an operator' };
      break;
    case 'resume': {
      if (rollout.phase !== 'paused') return refuse(`the rollout is ${rollout.phase}, not paused`);
      const { why: _why, ...rest } = s.r;
      s.r = { ...rest, phase: 'running' };
      break;
    }
    case 'cancel':
      if (!ACTIVE.has(rollout.phase) && rollout.phase !== 'aborted')
        return refuse(`the rollout is ${rollout.phase} already`);
      for (const m of Object.values(s.members))
        if ((m.state === 'staging' || m.state === 'staged') && m.command)
          s.send(m.id, { op: 'cancel', command: m.command.id });
      s.r = { ...s.r, phase: 'cancelled', why: 'cancelled by an operator' };
      break;
    case 'rollback': {
      if (!ACTIVE.has(rollout.phase) && rollout.phase !== 'aborted')
        return refuse(`the rollout is ${rollout.phase}: nothing to roll back`);
      for (const m of Object.values(s.members)) {
        if ((m.state === 'staging' || m.state === 'staged') && m.command?.op === 'stage') {
          // Never activated: the staging is called off, nothing is switched back.
          s.send(m.id, { op: 'cancel', command: m.command.id });
          continue;
        }
        if (m.activatedAt === undefined || m.state === 'rolled-back') continue;
        const cmd = s.send(m.id, { op: 'rollback' });
        s.set(m.id, { state: m.state, command: { id: cmd, op: 'rollback' } });
      }
      s.r = { ...s.r, phase: 'rolling-back', why: 'rolled back by an operator' };
      break;
    }
    case 'commit': {
      if (rollout.phase !== 'completed')
        return refuse(`the rollout is ${rollout.phase}: commit once every member finished (completed)`);
      for (const m of Object.values(s.members)) {
        if (m.state !== 'converged') continue;
        const cmd = s.send(m.id, { op: 'commit' });
        s.set(m.id, { state: 'converged', command: { id: cmd, op: 'commit' } });
      }
      break;
    }
    case 'operate': {
      if (!ACTIVE.has(rollout.phase)) return refuse(`the rollout is ${rollout.phase}`);
      const b = barrier(rollout, ctx.fresh);
      if (!b.holds) {
        const total = Object.keys(rollout.members).length;
        const required = rollout.spec.required.filter((id) => !b.good.includes(id));
        return refuse(
          `the barrier does not hold: ${b.good.length} converged and fresh of ${total}, ${b.needed} needed` +
            (required.length > 0 ? `; required but not converged: ${required.join(', ')}` : '') +
            (b.missing.length > 0
              ? `; missing: ${b.missing.slice(0, 10).join(', ')}${b.missing.length > 10 ? ', …' : ''}`
              : ''),
        );
      }
      if (!sameSet(b.good, event.members))
        return refuse('the barrier changed while the operation was being signed; ask again');
      const opId = ctx.newId();
      const told: Record<string, string> = {};
      for (const id of b.good)
        told[id] = s.send(id, { op: 'operate', operation: opId, name: event.name, at: event.at });
      const op: Operation = {
        id: opId,
        name: event.name,
        at: event.at,
        exp: event.exp,
        args: event.args,
        token: event.token,
        told,
        results: {},
        state: 'released',
      };
      s.r = { ...s.r, operations: [...s.r.operations, op] };
      return s.done();
    }
  }
  s.advance();
  s.guardOperations();
  const members = Object.values(s.members);
  if (
    s.r.phase === 'rolling-back' &&
    members.every((m) => m.activatedAt === undefined || m.state === 'rolled-back' || m.state === 'failed')
  )
    s.r = { ...s.r, phase: 'rolled-back' };
  if (members.some((m) => m.state === 'committed') && members.every((m) => m.state !== 'converged'))
    s.r = { ...s.r, phase: 'committed' };
  return s.done();
}

function onReport(s: Stepper, m: Member, e: Extract<RolloutEvent, { kind: 'report' }>): void {
  const sent = s.inflight[e.command];
  if (sent?.member === m.id && TERMINAL[sent.command.op].has(e.state)) s.answered(e.command);
  if (sent?.command.op === 'operate') {
    s.operationReport(sent.command.operation, m.id, e);
    return;
  }
  const current = m.command?.id === e.command;
  if (!current) return;
  switch (e.state) {
    case 'fetching':
      return; // the engine serves the bytes asked for; the deadline stays
    case 'staged':
      if (m.state === 'staging') {
        if (s.r.phase === 'running') s.activate(m.id);
        else s.set(m.id, { state: 'staged', command: m.command! });
      }
      return;
    case 'activated':
      if (m.state === 'activating') {
        s.set(m.id, {
          state: 'verifying',
          command: m.command!,
          activatedAt: m.activatedAt!,
          deadlineAt: m.deadlineAt!,
        });
        s.effects.push({ kind: 'swarm-round', member: m.id });
      }
      return;
    case 'rolled-back':
      s.fail(m.id, 'rolled-back', e.code ?? 'rolled-back', e.detail);
      return;
    case 'failed':
      s.fail(m.id, 'failed', e.code ?? 'failed', e.detail);
      return;
    case 'committed':
      if (m.command?.op === 'commit') s.set(m.id, { state: 'committed', command: m.command });
      return;
    case 'cancelled':
      if (m.state === 'staging' || m.state === 'staged') s.fail(m.id, 'failed', 'cancelled', e.detail);
      return;
    case 'done':
      return;
  }
}

function onRound(s: Stepper, m: Member, e: Extract<RolloutEvent, { kind: 'round' }>): void {
  const target = s.r.spec.release.digest;
  const measured = e.measured ?? m.measured;
  const { id } = m;
  const counts =
    m.state === 'verifying' &&
    m.activatedAt !== undefined &&
    e.issuedAt >= m.activatedAt &&
    e.reason === 'swarm' &&
    e.answered !== false;
  if (counts) {
    if (!e.affirming)
      s.fail(
        id,
        'failed',
        'appraisal-failed',
        `the swarm round after activate was not affirming (${e.code ?? 'no code'})`,
      );
    else if (measured !== target) {
      // The device said `activated`, its quote shows another tree: a claim the evidence denies.
      s.fail(
        id,
        'failed',
        'claim-mismatch',
        `reported activated, but its quote shows ${measured ?? 'no entry'} for ${s.r.spec.release.name}, not ${target}`,
      );
      if (s.r.phase === 'running') s.r = { ...s.r, phase: 'paused', why: `claim-mismatch on ${id}` };
    } else
      s.set(id, {
        state: 'converged',
        activatedAt: m.activatedAt!,
        ...(m.command && { command: m.command }),
      });
  }
  const now = s.members[id]!;
  s.members[id] = { ...now, ...(measured !== undefined && { measured }) };
}
