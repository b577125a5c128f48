import { barrier } from './machine.ts';
import type { Member, MemberState, Operation, Rollout, RolloutPhase, RolloutSpec } from './model.ts';

// What operators and back ends see of a rollout: the notice (retained JSON on
// vigil/v1/fleet/rollouts/{id} and the `rollout` event, small enough for every step) and the
// status view (GET /v1/rollouts/{id}, `vigil-gateway rollout status`): per wave and per member the
// state and code, the barrier, the operations, and the members grouped by the digest their last
// quote showed. Times are Unix ms; absent values are null.

export interface RolloutNotice {
  readonly id: string;
  readonly swarm: string;
  readonly release: RolloutSpec['release'];
  readonly phase: RolloutPhase;
  readonly why: string | null;
  /** Members per state. */
  readonly members: Readonly<Partial<Record<MemberState, number>>>;
  readonly barrier: { readonly holds: boolean; readonly converged: number; readonly needed: number };
  readonly operations: readonly {
    readonly id: string;
    readonly name: string;
    readonly at: number;
    readonly state: Operation['state'];
  }[];
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface MemberView {
  readonly id: string;
  readonly state: MemberState;
  readonly code: string | null;
  readonly detail: string | null;
  /** The digest of the release's software in the member's last appraised software log. */
  readonly measured: string | null;
  /** Whether its posture is fresh and good on an attested connection now. */
  readonly fresh: boolean;
  readonly deadlineAt: number | null;
  readonly activatedAt: number | null;
}

export interface WaveView {
  /** 0 is the canary; `trailing` for members back from absence and late joiners. */
  readonly wave: number | 'trailing';
  readonly started: boolean;
  readonly converged: number;
  readonly members: readonly MemberView[];
}

export interface DigestGroup {
  /** What the last appraised quote showed for the software; null: no entry for it (or never quoted). */
  readonly digest: string | null;
  /** The version the appraised log names with that digest (a registered release, or appraisal failed). */
  readonly version: string | null;
  readonly target: boolean;
  readonly members: readonly string[];
}

export interface OperationView {
  readonly id: string;
  readonly name: string;
  readonly at: number;
  readonly exp: number;
  readonly state: Operation['state'];
  readonly reasons: readonly string[];
  readonly told: readonly string[];
  readonly results: Readonly<Record<string, { state: string; code: string | null; detail: string | null }>>;
  /** The operate token, hex: verify it with the gateway's EAR key (GET /v1/ear-key). */
  readonly token: string;
}

export interface RolloutView extends RolloutNotice {
  readonly spec: {
    readonly waves: readonly string[];
    readonly successPercent: number;
    readonly abort: { readonly percent: number; readonly min: number };
    readonly barrier: string;
    readonly required: readonly string[];
    readonly timeouts: { readonly stageMs: number; readonly activateMs: number; readonly commandMs: number };
  };
  readonly barrierDetail: {
    readonly holds: boolean;
    readonly needed: number;
    readonly good: readonly string[];
    readonly missing: readonly string[];
  };
  readonly waves: readonly WaveView[];
  readonly digests: readonly DigestGroup[];
  readonly operationsDetail: readonly OperationView[];
  /** Commands sent and not yet answered. */
  readonly inflight: number;
}

/** How the view learns about the fleet now. */
export interface ViewContext {
  readonly fresh: (member: string) => boolean;
  /** The entry of `name` in the device's last appraised software log. */
  readonly running: (
    member: string,
    name: string,
  ) => { readonly digest: string; readonly version: string } | undefined;
}

const quota = (q: Rollout['spec']['waves'][number] | Rollout['spec']['barrier']): string =>
  q.kind === 'all' ? 'all' : q.kind === 'count' ? String(q.n) : `${q.percent}%`;

export function rolloutNotice(r: Rollout, fresh: (member: string) => boolean): RolloutNotice {
  const members: Partial<Record<MemberState, number>> = {};
  for (const m of Object.values(r.members)) members[m.state] = (members[m.state] ?? 0) + 1;
  const b = barrier(r, fresh);
  return {
    id: r.spec.id,
    swarm: r.spec.swarm,
    release: r.spec.release,
    phase: r.phase,
    why: r.why ?? null,
    members,
    barrier: { holds: b.holds, converged: b.good.length, needed: b.needed },
    operations: r.operations.map((o) => ({ id: o.id, name: o.name, at: o.at, state: o.state })),
    createdAt: r.spec.createdAt,
    updatedAt: r.updatedAt,
  };
}

function memberView(m: Member, fresh: boolean): MemberView {
  return {
    id: m.id,
    state: m.state,
    code: m.code ?? null,
    detail: m.detail ?? null,
    measured: m.measured ?? null,
    fresh,
    deadlineAt: m.deadlineAt ?? null,
    activatedAt: m.activatedAt ?? null,
  };
}

export function rolloutView(r: Rollout, ctx: ViewContext): RolloutView {
  const s = r.spec;
  const b = barrier(r, ctx.fresh);
  const members = Object.values(r.members).sort((a, b) => (a.id < b.id ? -1 : 1));
  const waves: WaveView[] = [];
  for (let w = 0; w <= r.waves; w++) {
    const inWave = members.filter((m) => m.wave === w);
    if (w === r.waves && inWave.length === 0) break;
    waves.push({
      wave: w === r.waves ? 'trailing' : w,
      started: w < r.wavesStarted || (w === r.waves && r.wavesStarted >= r.waves),
      converged: inWave.filter((m) => m.state === 'converged' || m.state === 'committed').length,
      members: inWave.map((m) => memberView(m, ctx.fresh(m.id))),
    });
  }
  const groups = new Map<string | null, { version: string | null; ids: string[] }>();
  for (const m of members) {
    const sw = ctx.running(m.id, s.release.name);
    const d = sw?.digest ?? null;
    const g = groups.get(d) ?? { version: sw?.version ?? null, ids: [] };
    g.ids.push(m.id);
    groups.set(d, g);
  }
  const digests: DigestGroup[] = [...groups].map(([digest, g]) => ({
    digest,
    version: g.version,
    target: digest === s.release.digest,
    members: g.ids,
  }));
  digests.sort((a, b) => Number(b.target) - Number(a.target) || b.members.length - a.members.length);
  return {
    ...rolloutNotice(r, ctx.fresh),
    spec: {
      waves: s.waves.map(quota),
      successPercent: s.successPercent,
      abort: s.abort,
      barrier: quota(s.barrier),
      required: s.required,
      timeouts: s.timeouts,
    },
    barrierDetail: { holds: b.holds, needed: b.needed, good: b.good, missing: b.missing },
    waves,
    digests,
    operationsDetail: r.operations.map((o) => ({
      id: o.id,
      name: o.name,
      at: o.at,
      exp: o.exp,
      state: o.state,
      reasons: o.reasons ?? [],
      told: Object.keys(o.told).sort(),
      results: Object.fromEntries(
        Object.entries(o.results).map(([id, x]) => [
          id,
          { state: x.state, code: x.code ?? null, detail: x.detail ?? null },
        ]),
      ),
      token: o.token,
    })),
    inflight: Object.keys(r.inflight).length,
  };
}
