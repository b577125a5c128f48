import {
  FAILED,
  FINISHED,
  type Member,
  type MemberState,
  type Operation,
  type Rollout,
  type RolloutSpec,
} from './model.ts';
import { barrierSize, waveSizes } from './quota.ts';

// The rollout state machine (PROTOCOL.md §6.4), pure: (rollout, event, context) → (rollout,
// effects). The executor (rollouts.ts) turns effects into commands and swarm rounds and feeds
// back what happens. Convergence comes only from an appraised round issued after a member's
// `activate`; a report alone never converges anyone.

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
  /** An appraised round of the member settled; `measured` is the digest of the release's name in its log. */
  | {
      readonly kind: 'round';
      readonly member: string;
      readonly issuedAt: number;
      readonly affirming: boolean;
      readonly measured?: string;
      readonly code?: string;
    }
  /** The member attested on a connection (after a restart, or back online). */
  | { readonly kind: 'attested'; readonly member: string }
  /** The member's posture is no longer fresh and good, or its attested connection is gone. */
  | { readonly kind: 'lost'; readonly member: string }
  /** Time passed: deadlines due now fail their step. */
  | { readonly kind: 'tick' }
  | { readonly kind: 'pause' | 'resume' | 'cancel' | 'rollback' | 'commit' }
  | {
      readonly kind: 'operate';
      readonly name: string;
      readonly at: number;
    };

export type CommandEffect =
  | { readonly op: 'stage' }
  | { readonly op: 'activate'; readonly at: number }
  | { readonly op: 'commit' }
  | { readonly op: 'rollback' }
  | { readonly op: 'cancel'; readonly command: string }
  | { readonly op: 'operate'; readonly operation: string; readonly name: string; readonly at: number };

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

/** A new rollout over `members` (sorted: the canary is the first). */
export function createRollout(spec: RolloutSpec, members: readonly string[], now: number): Rollout {
  const sorted = [...new Set(members)].sort();
  const sizes = waveSizes(spec.waves, sorted.length);
  const all: Record<string, Member> = {};
  let i = 0;
  sizes.forEach((size, wave) => {
    for (let k = 0; k < size; k++, i++) all[sorted[i]!] = { id: sorted[i]!, wave, state: 'waiting' };
  });
  return { spec, phase: 'running', wavesStarted: 0, members: all, operations: [], updatedAt: now };
}

/** The barrier: enough members (and every required one) converged on the target and fresh. */
export function barrier(
  r: Rollout,
  fresh: (member: string) => boolean,
): { readonly holds: boolean; readonly good: readonly string[]; readonly missing: readonly string[] } {
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
  return {
    holds: requiredOk && good.length >= barrierSize(r.spec, members.length) && good.length > 0,
    good,
    missing,
  };
}

class Stepper {
  readonly effects: Effect[] = [];
  members: Record<string, Member>;
  r: Rollout;

  constructor(
    rollout: Rollout,
    readonly ctx: StepContext,
  ) {
    this.r = rollout;
    this.members = { ...rollout.members };
  }

  set(id: string, change: Partial<Member> & { state: MemberState }): void {
    const { code: _c, detail: _d, deadlineAt: _t, ...rest } = this.members[id]!;
    this.members[id] = { ...rest, ...change } as Member;
  }

  send(member: string, command: CommandEffect): string {
    const id = this.ctx.newId();
    this.effects.push({ kind: 'send', member, id, command });
    return id;
  }

  stage(id: string): void {
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

  /** Starts waves while the current one has met its success share; aborts past the abort share. */
  advance(): void {
    if (this.r.phase !== 'running') return;
    const list = Object.values(this.members);
    const started = list.filter((m) => m.wave < this.r.wavesStarted);
    const finished = started.filter((m) => FINISHED.has(m.state));
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
    const waves = Math.max(...list.map((m) => m.wave), -1) + 1;
    while (this.r.wavesStarted < waves) {
      const current = this.r.wavesStarted - 1;
      if (current >= 0) {
        const wave = list.filter((m) => m.wave === current);
        const converged = wave.filter((m) => m.state === 'converged').length;
        if ((converged / wave.length) * 100 < this.r.spec.successPercent) break;
      }
      this.r = { ...this.r, wavesStarted: this.r.wavesStarted + 1 };
      for (const m of list) if (m.wave === this.r.wavesStarted - 1 && m.state === 'waiting') this.stage(m.id);
    }
    const rest = Object.values(this.members);
    if (this.r.wavesStarted >= waves && rest.every((m) => FINISHED.has(m.state) || m.state === 'absent'))
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
        for (const [member, command] of Object.entries(op.told)) this.send(member, { op: 'cancel', command });
        return {
          ...op,
          state: 'cancelled',
          reasons: [
            `the barrier broke before ${new Date(op.at).toISOString()}: ${b.missing.slice(0, 5).join(', ')} not converged and fresh`,
          ],
        };
      }),
    };
  }

  done(): Step {
    return { rollout: { ...this.r, members: this.members, updatedAt: this.ctx.now }, effects: this.effects };
  }
}

const ACTIVE = new Set<Rollout['phase']>(['running', 'paused', 'completed']);

export function step(rollout: Rollout, event: RolloutEvent, ctx: StepContext): Step {
  const s = new Stepper(rollout, ctx);
  const refuse = (why: string): Step => ({ rollout, effects: [], refused: why });
  const member = 'member' in event ? s.members[event.member] : undefined;
  if ('member' in event && !member) return { rollout, effects: [] };
  switch (event.kind) {
    case 'start':
      if (rollout.wavesStarted > 0) return refuse('the rollout has started already');
      s.advance();
      break;
    case 'unreachable':
      if (member!.state === 'staging' || member!.state === 'waiting')
        s.set(member!.id, { state: 'absent', code: 'absent', detail: event.detail });
      break;
    case 'report':
      onReport(s, member!, event);
      break;
    case 'round':
      onRound(s, member!, event);
      break;
    case 'attested':
      if (member!.state === 'absent' && rollout.phase === 'running') s.stage(member!.id);
      else if (member!.state === 'verifying') s.effects.push({ kind: 'swarm-round', member: member!.id });
      break;
    case 'lost':
      break;
    case 'tick':
      for (const m of Object.values(s.members)) {
        if (
          m.deadlineAt !== undefined &&
          m.deadlineAt <= ctx.now &&
          (m.state === 'staging' || m.state === 'activating' || m.state === 'verifying')
        )
          s.fail(
            m.id,
            'failed',
            'timed-out',
            `no ${m.state === 'staging' ? 'staged report' : 'converged quote'} by the deadline`,
          );
      }
      break;
    case 'pause':
      if (rollout.phase !== 'running') return refuse(`the rollout is ${rollout.phase}, not running`);
      s.r = { ...s.r, phase: 'paused', why: 'paused by an operator' };
      break;
    case 'resume':
      if (rollout.phase !== 'paused') return refuse(`the rollout is ${rollout.phase}, not paused`);
      s.r = { ...s.r, phase: 'running' };
      delete (s.r as { why?: string }).why;
      break;
    case 'cancel':
      if (!ACTIVE.has(rollout.phase)) return refuse(`the rollout is ${rollout.phase} already`);
      for (const m of Object.values(s.members))
        if (m.state === 'staging' && m.command) s.send(m.id, { op: 'cancel', command: m.command.id });
      s.r = { ...s.r, phase: 'cancelled', why: 'cancelled by an operator' };
      break;
    case 'rollback': {
      if (!ACTIVE.has(rollout.phase) && rollout.phase !== 'aborted')
        return refuse(`the rollout is ${rollout.phase}: nothing to roll back`);
      for (const m of Object.values(s.members)) {
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
      if (!b.holds)
        return refuse(
          `the barrier does not hold: ${b.good.length} converged and fresh of ${Object.keys(rollout.members).length}, ${barrierSize(rollout.spec, Object.keys(rollout.members).length)} needed${
            rollout.spec.required.filter((id) => !b.good.includes(id)).length > 0
              ? `; required but not converged: ${rollout.spec.required.filter((id) => !b.good.includes(id)).join(', ')}`
              : ''
          }`,
        );
      const opId = ctx.newId();
      const told: Record<string, string> = {};
      for (const id of b.good)
        told[id] = s.send(id, { op: 'operate', operation: opId, name: event.name, at: event.at });
      const op: Operation = { id: opId, name: event.name, at: event.at, told, state: 'released' };
      s.r = { ...s.r, operations: [...s.r.operations, op] };
      return s.done();
    }
  }
  s.advance();
  s.guardOperations();
  if (
    s.r.phase === 'rolling-back' &&
    Object.values(s.members).every(
      (m) => m.activatedAt === undefined || m.state === 'rolled-back' || m.state === 'failed',
    )
  )
    s.r = { ...s.r, phase: 'rolled-back' };
  if (
    Object.values(s.members).some((m) => m.state === 'committed') &&
    Object.values(s.members).every((m) => m.state !== 'converged')
  )
    s.r = { ...s.r, phase: 'committed' };
  return s.done();
}

function onReport(s: Stepper, m: Member, e: Extract<RolloutEvent, { kind: 'report' }>): void {
  const current = m.command?.id === e.command;
  switch (e.state) {
    case 'fetching':
      return; // the executor serves the bytes asked for; the deadline stays
    case 'staged':
      if (current && m.state === 'staging') {
        if (s.r.phase === 'running') s.activate(m.id);
        else s.set(m.id, { state: 'staging', command: m.command! });
      }
      return;
    case 'activated':
      if (current && m.state === 'activating') {
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
      if (current) s.fail(m.id, 'rolled-back', e.code ?? 'rolled-back', e.detail);
      return;
    case 'failed':
      if (current) s.fail(m.id, 'failed', e.code ?? 'failed', e.detail);
      return;
    case 'committed':
      if (current && m.command?.op === 'commit') s.set(m.id, { state: 'committed', command: m.command });
      return;
    case 'cancelled':
      if (current && m.state === 'staging') s.fail(m.id, 'failed', 'cancelled', e.detail);
      return;
    case 'done':
      return;
  }
}

function onRound(s: Stepper, m: Member, e: Extract<RolloutEvent, { kind: 'round' }>): void {
  const target = s.r.spec.release.digest;
  const measured = e.measured ?? m.measured;
  const { id } = m;
  if (m.state === 'verifying' && m.activatedAt !== undefined && e.issuedAt >= m.activatedAt) {
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
      s.set(id, { state: 'converged', activatedAt: m.activatedAt, ...(m.command && { command: m.command }) });
  }
  const now = s.members[id]!;
  s.members[id] = { ...now, ...(measured !== undefined && { measured }) };
}
