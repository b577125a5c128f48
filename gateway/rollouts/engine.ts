import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { encodeCbor } from '../../shared/cbor/encode.ts';
import type { CborMap } from '../../shared/cbor/value.ts';
import type { Clock, Random, Timer } from '../../shared/clock.ts';
import { MAX_CHUNK_BYTES, type Report } from '../../shared/protocol/messages.ts';
import { membersDigest } from '../../shared/protocol/operate-token.ts';
import { fromHex, toHex } from '../../shared/tpm/bytes.ts';
import type { DeviceConnection } from '../connections/device-connection.ts';
import { Pending } from '../connections/pending.ts';
import type { Connections } from '../connections/registry.ts';
import type { Replies } from '../connections/replies.ts';
import type { MessageRouter } from '../connections/router.ts';
import type { DeviceRecord, RoundRecord } from '../model.ts';
import type { PostureNotice } from '../posture/fleet.ts';
import { checkFloor } from '../releases/floor.ts';
import type { ReleaseManifestRecord } from '../releases/model.ts';
import type { Store } from '../store/store.ts';
import type { EarSigner } from '../verifier/ear.ts';
import { ArtifactChunks } from './chunks.ts';
import { remaining, wireCommand } from './commands.ts';
import { RolloutError } from './errors.ts';
import {
  barrier,
  createRollout,
  type Effect,
  nextDeadline,
  outstanding,
  type RolloutEvent,
  type Step,
  step,
} from './machine.ts';
import {
  HOLDING,
  type InFlight,
  type Operation,
  type Quota,
  type Rollout,
  type RolloutSpec,
} from './model.ts';
import { TokenBucket } from './token-bucket.ts';
import { type RolloutNotice, type RolloutView, rolloutNotice, rolloutView } from './view.ts';

// The gateway's rollout engine: the pure state machine (machine.ts) driven by what happens to the
// swarm, its effects carried out. Every step of a rollout runs in one queue; a step that changes
// the rollout is stored and committed before any command it produced goes out (write-ahead), so a
// gateway killed at any moment restarts knowing every command id it may have sent, and sends the
// ones still in flight again, with the same ids, when their members attest. Commands go only to a
// connection whose posture is fresh and good; convergence is fed from swarm rounds settled on
// those connections, reading the digest from the device's replayed software log.

/** How long an operate token stays valid after the operation's time. */
export const OPERATE_VALIDITY_MS = 5 * 60_000;

export interface RolloutEngineDeps {
  /** The gateway directory (artifacts are under it). */
  readonly dir: string;
  readonly store: Store;
  readonly fleet: { get(id: string): DeviceRecord | undefined; all(): Iterable<DeviceRecord> };
  readonly connections: Connections;
  readonly replies: Replies;
  /** Issues a `swarm` round on an attested connection (or leaves the one in flight). */
  readonly startRound: (conn: DeviceConnection) => void;
  readonly ear: EarSigner;
  /** Policy `rollouts.artifactBytesPerSecond`, read per refill. */
  readonly artifactBytesPerSecond: () => number;
  /** Hears every change of a rollout (events, the retained notice). */
  readonly publish: (notice: RolloutNotice) => void;
  readonly clock: Clock;
  readonly random: Random;
  readonly log: Logger;
}

/** A rollout as an operator asks for it (validated by the API). */
export interface StartRequest {
  /** `KEY=VALUE`: the devices carrying this label now are the members. */
  readonly swarm: string;
  readonly release: { readonly name: string; readonly version: string };
  readonly waves: readonly Quota[];
  readonly successPercent: number;
  readonly abort: RolloutSpec['abort'];
  readonly barrier: RolloutSpec['barrier'];
  readonly required: readonly string[];
  readonly timeouts: RolloutSpec['timeouts'];
  /** Roll to a release at or below the swarm's committed floor on purpose. */
  readonly force: boolean;
}

export interface OperateRequest {
  readonly name: string;
  readonly args: CborMap;
  /** When the members run it (Unix ms); default now. */
  readonly at?: number;
}

export type OperatorAction = 'pause' | 'resume' | 'cancel' | 'rollback' | 'commit';

/** A command in flight as a device's Pending set keeps it. */
interface Sent {
  readonly id: string;
  readonly deadlineAt: number;
  readonly rollout: string;
}

/** Phases after which a rollout needs nothing more unless an operator acts on it. */
const ENDED = new Set<Rollout['phase']>(['cancelled', 'rolled-back', 'committed']);

const stateKey = (r: Rollout) => JSON.stringify({ ...r, updatedAt: 0 });

function labelOf(swarm: string): [string, string] {
  const eq = swarm.indexOf('=');
  return [swarm.slice(0, eq), swarm.slice(eq + 1)];
}

export class RolloutEngine {
  readonly #d: RolloutEngineDeps;
  readonly #rollouts = new Map<string, Rollout>();
  readonly #releases = new Map<string, ReleaseManifestRecord>();
  /** Rollouts that still act on a device, by device. */
  readonly #byMember = new Map<string, Set<string>>();
  /** Commands in flight per device: a device that restarts reports on its next connection. */
  readonly #pending = new Map<string, Pending<Sent>>();
  readonly #timers = new Map<string, Timer>();
  /** The connection each device was last seen fresh and good on: a change is an `attested`. */
  readonly #freshOn = new Map<string, DeviceConnection>();
  /** The last want served on each connection (stage id and offset). */
  readonly #served = new WeakMap<DeviceConnection, string>();
  readonly #bucket: TokenBucket;
  readonly #chunks: ArtifactChunks;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(deps: RolloutEngineDeps) {
    this.#d = deps;
    this.#bucket = new TokenBucket(deps.artifactBytesPerSecond, deps.clock, MAX_CHUNK_BYTES);
    this.#chunks = new ArtifactChunks(deps.dir, this.#bucket);
  }

  /** The engine with every rollout that still needs it resumed from the store: deadlines re-armed. */
  static async open(deps: RolloutEngineDeps): Promise<RolloutEngine> {
    const engine = new RolloutEngine(deps);
    for (const r of await deps.store.rollouts())
      if (!ENDED.has(r.phase) || Object.keys(r.inflight).length > 0) await engine.#load(r);
    const resumed = [...engine.#rollouts.values()];
    if (resumed.length > 0)
      deps.log.info(
        {
          rollouts: resumed.map((r) => r.spec.id),
          inflight: resumed.reduce((n, r) => n + Object.keys(r.inflight).length, 0),
        },
        'rollouts resumed: commands in flight go out again, with their ids, as members attest',
      );
    return engine;
  }

  /** Takes `report` from the router: from attested connections only. */
  register(router: MessageRouter): void {
    router.on(
      'report',
      ['attested'],
      (conn, m) => this.#onReport(conn, m),
      (phase) =>
        phase === 'awaiting-hello'
          ? 'report before hello: send hello first, then attest'
          : 'report before this connection attested: a report counts only from a connection whose first round was appraised good',
    );
  }

  // What happens to the swarm.

  /** A round settled (AttestationObserver): convergence, and devices becoming fresh and good. */
  roundSettled(record: RoundRecord): void {
    const device = record.deviceId;
    for (const id of this.#byMember.get(device) ?? []) {
      const r = this.#rollouts.get(id)!;
      const event: RolloutEvent = {
        kind: 'round',
        member: device,
        issuedAt: record.issuedAt,
        reason: record.reason,
        answered: record.state === 'appraised',
        affirming: record.state === 'appraised' && record.status === 'affirming',
        ...this.#measured(device, r.spec.release.name),
        ...(record.codes[0] !== undefined && { code: record.codes[0] }),
      };
      void this.#run(async () => {
        await this.#apply(id, event);
        // A round that could not show convergence (issued before activate, another reason): ask
        // for the swarm round again while the member is still waiting for one.
        if (this.#rollouts.get(id)?.members[device]?.state === 'verifying') {
          const conn = this.#askable(device);
          if (conn) this.#d.startRound(conn);
        }
      }).catch((err) => this.#failed(id, err));
    }
    const conn = this.#askable(device);
    if (conn === undefined) this.#freshOn.delete(device);
    else if (this.#freshOn.get(device) !== conn) {
      this.#freshOn.set(device, conn);
      this.#attested(device, conn);
    }
    if (conn !== undefined && !this.#held(device)) this.#joinSwarms(device);
  }

  /** A posture changed (the fleet's event): a member no longer fresh may break the barrier. */
  postureChanged(notice: PostureNotice): void {
    if (this.#askable(notice.id) === undefined) this.#freshOn.delete(notice.id);
    for (const id of this.#byMember.get(notice.id) ?? [])
      this.#enqueue(id, { kind: 'lost', member: notice.id });
  }

  /** A device connection closed. */
  closed(conn: DeviceConnection): void {
    if (this.#freshOn.get(conn.deviceId) !== conn) return;
    this.#freshOn.delete(conn.deviceId);
    for (const id of this.#byMember.get(conn.deviceId) ?? [])
      this.#enqueue(id, { kind: 'lost', member: conn.deviceId });
  }

  // Operator actions.

  async start(req: StartRequest): Promise<Rollout> {
    return this.#run(async () => {
      const { store, clock } = this.#d;
      const [key, value] = labelOf(req.swarm);
      const members = [...this.#d.fleet.all()].filter((d) => d.labels[key] === value).map((d) => d.id);
      if (members.length === 0)
        throw new RolloutError(
          'no-match',
          `no device has label ${req.swarm}: label the swarm's devices first (vigil-gateway label ID ${req.swarm})`,
        );
      const strangers = req.required.filter((id) => !members.includes(id));
      if (strangers.length > 0)
        throw new RolloutError(
          'no-match',
          `required member${strangers.length > 1 ? 's' : ''} ${strangers.join(', ')} not in swarm ${req.swarm}`,
        );
      const { name, version } = req.release;
      const release = (await store.releaseManifests(name)).find((m) => m.version === version);
      if (!release)
        throw new RolloutError(
          'release-not-found',
          `no imported release ${name} ${version}: import its bundle on the gateway's host (vigil-gateway release import BUNDLE), see GET /v1/releases/manifests`,
        );
      const file = join(this.#d.dir, release.artifact.path);
      const size = await stat(file).then(
        (s) => s.size,
        () => undefined,
      );
      if (size !== release.artifact.size)
        throw new RolloutError(
          'release-not-found',
          `the artifact of ${name} ${version} is ${size === undefined ? 'missing' : `${size} bytes, not ${release.artifact.size}`} at ${file}: import the bundle again`,
        );
      this.#checkFree(req.swarm, members);
      const floor = (await store.swarmFloors(req.swarm)).find((f) => f.name === name);
      const decision = checkFloor({ name, seq: release.seq, floor: floor?.seq, force: req.force });
      if (!decision.ok) throw new RolloutError('rollback-refused', `swarm ${req.swarm}: ${decision.detail}`);
      const now = clock.now();
      const spec: RolloutSpec = {
        id: `r-${toHex(this.#d.random(6))}`,
        swarm: req.swarm,
        release: { name, version, seq: release.seq, digest: release.digest },
        waves: req.waves,
        successPercent: req.successPercent,
        abort: req.abort,
        barrier: req.barrier,
        required: req.required,
        timeouts: req.timeouts,
        createdAt: now,
      };
      const r = createRollout(spec, members, now);
      this.#rollouts.set(spec.id, r);
      this.#releases.set(spec.id, release);
      this.#index(r);
      this.#d.log.info(
        {
          rollout: spec.id,
          swarm: req.swarm,
          release: `${name} ${version}`,
          seq: release.seq,
          members: members.length,
          forced: decision.forced,
        },
        decision.forced
          ? `rollout started BELOW the swarm's committed floor ${floor?.seq} (forced)`
          : 'rollout started',
      );
      await this.#apply(spec.id, { kind: 'start' });
      return this.#rollouts.get(spec.id)!;
    });
  }

  async act(id: string, action: OperatorAction): Promise<Rollout> {
    return this.#run(async () => {
      await this.#loaded(id);
      const s = await this.#apply(id, { kind: action });
      if (s?.refused) throw new RolloutError('rollout-refused', `${action} ${id}: ${s.refused}`);
      this.#d.log.info({ rollout: id, action }, `rollout ${action} by an operator`);
      return this.#rollouts.get(id)!;
    });
  }

  /**
   * Releases an operation to the converged members, with a token signed over them, if the barrier
   * holds now; refuses with who is missing otherwise.
   */
  async operate(id: string, req: OperateRequest): Promise<Operation> {
    return this.#run(async () => {
      const r = await this.#loaded(id);
      const now = this.#d.clock.now();
      const at = req.at ?? now;
      const exp = Math.max(at, now) + OPERATE_VALIDITY_MS;
      const b = barrier(r, (m) => this.#fresh(m));
      const token = b.holds
        ? toHex(
            this.#d.ear.operateToken({
              swarm: r.spec.swarm,
              rollout: id,
              name: req.name,
              digest: fromHex(r.spec.release.digest),
              members: membersDigest(b.good),
              at,
              exp,
            }),
          )
        : '';
      const args = toHex(encodeCbor(req.args));
      const s = await this.#apply(id, {
        kind: 'operate',
        name: req.name,
        at,
        exp,
        args,
        token,
        members: b.good,
      });
      if (s?.refused) {
        // The machine says why: the rollout's phase first, then the barrier.
        const code = !b.holds && s.refused.startsWith('the barrier') ? 'barrier-not-held' : 'rollout-refused';
        throw new RolloutError(code, `operate ${id}: ${s.refused}`, b.missing);
      }
      const op = this.#rollouts.get(id)!.operations.at(-1)!;
      this.#d.log.info(
        { rollout: id, operation: op.id, name: op.name, at: op.at, members: Object.keys(op.told).length },
        'operation released: the barrier holds',
      );
      return op;
    });
  }

  /** A rollout as the engine holds it, else as stored. */
  async get(id: string): Promise<Rollout | undefined> {
    return this.#rollouts.get(id) ?? (await this.#d.store.rollout(id));
  }

  async view(id: string): Promise<RolloutView | undefined> {
    const r = await this.get(id);
    if (!r) return undefined;
    return rolloutView(r, {
      fresh: (m) => this.#fresh(m),
      running: (m, name) => {
        const sw = this.#running(m, name);
        return sw && { digest: toHex(sw.digest), version: sw.version };
      },
    });
  }

  async list(): Promise<RolloutNotice[]> {
    return (await this.#d.store.rollouts()).map((r) =>
      rolloutNotice(this.#rollouts.get(r.spec.id) ?? r, (m) => this.#fresh(m)),
    );
  }

  /** Resolves once every step queued so far is done (tests, shutdown). */
  idle(): Promise<void> {
    return this.#queue.then(() => undefined);
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const t of this.#timers.values()) t.cancel();
    this.#timers.clear();
    for (const p of this.#pending.values()) p.drain();
    this.#bucket.close();
    await this.#queue.catch(() => undefined);
  }

  // The queue and the step.

  #run<T>(work: () => Promise<T>): Promise<T> {
    const p = this.#queue.then(work);
    this.#queue = p.catch(() => undefined);
    return p;
  }

  #enqueue(id: string, event: RolloutEvent): void {
    void this.#run(() => this.#apply(id, event)).catch((err) => this.#failed(id, err));
  }

  #failed(id: string, err: unknown): void {
    this.#d.log.error({ err, rollout: id }, 'a rollout step failed; the rollout stays as last stored');
  }

  #ctx() {
    return {
      now: this.#d.clock.now(),
      newId: () => toHex(this.#d.random(16)),
      fresh: (m: string) => this.#fresh(m),
    };
  }

  async #apply(id: string, event: RolloutEvent): Promise<Step | undefined> {
    const before = this.#rollouts.get(id);
    if (!before || this.#closed) return undefined;
    const s = step(before, event, this.#ctx());
    if (s.refused) return s;
    const after = s.rollout;
    const changed = stateKey(before) !== stateKey(after);
    if (changed) {
      this.#rollouts.set(id, after);
      this.#d.store.saveRollout(after);
      // Write-ahead: no command leaves before the state naming its id is committed.
      await this.#d.store.flush();
    }
    this.#index(after);
    this.#syncPending(before, after);
    for (const e of s.effects) this.#perform(after, e);
    if (changed) {
      if (after.phase !== before.phase)
        this.#d.log.info(
          { rollout: id, from: before.phase, to: after.phase, why: after.why },
          'rollout phase',
        );
      if (after.phase === 'committed' && before.phase !== 'committed') await this.#recordFloor(after);
      this.#d.publish(rolloutNotice(after, (m) => this.#fresh(m)));
    }
    this.#arm(after);
    return s;
  }

  #perform(r: Rollout, e: Effect): void {
    const conn = this.#askable(e.member);
    if (e.kind === 'swarm-round') {
      if (conn) this.#d.startRound(conn);
      return;
    }
    const f = r.inflight[e.id];
    // Not askable now: the command stays in flight and goes out when the member attests.
    if (f && conn) this.#send(conn, r, e.id, f);
  }

  #send(conn: DeviceConnection, r: Rollout, id: string, f: InFlight): void {
    const release = this.#releases.get(r.spec.id)!;
    this.#d.replies.send(conn, wireCommand(r, id, f, release.manifest, this.#d.clock.now()));
  }

  /** A device became fresh and good on `conn`: resend what is in flight for it, tell its rollouts. */
  #attested(device: string, conn: DeviceConnection): void {
    for (const id of this.#byMember.get(device) ?? []) {
      void this.#run(async () => {
        const r = this.#rollouts.get(id);
        if (!r) return;
        for (const [cid, f] of outstanding(r, device, this.#d.clock.now())) this.#send(conn, r, cid, f);
        await this.#apply(id, { kind: 'attested', member: device });
      }).catch((err) => this.#failed(id, err));
    }
  }

  /** Whether a rollout that holds its swarm has this device as a member. */
  #held(device: string): boolean {
    for (const id of this.#byMember.get(device) ?? [])
      if (HOLDING.has(this.#rollouts.get(id)!.phase)) return true;
    return false;
  }

  /** A device labelled into a swarm after its rollout started joins it, at its next good round. */
  #joinSwarms(device: string): void {
    const labels = this.#d.fleet.get(device)?.labels ?? {};
    for (const r of this.#rollouts.values()) {
      const [key, value] = labelOf(r.spec.swarm);
      if (HOLDING.has(r.phase) && labels[key] === value && !r.members[device]) {
        this.#enqueue(r.spec.id, { kind: 'join', member: device });
        return; // one rollout at a time for a device
      }
    }
  }

  #onReport(conn: DeviceConnection, m: Report): void {
    const device = conn.deviceId;
    const id = toHex(m.command);
    const found = this.#pending.get(device)?.lookup(id) ?? { kind: 'unknown' as const };
    if (found.kind === 'settled') return; // late: answered already, or past its deadline
    if (found.kind === 'unknown') {
      if (this.#sentBefore(device, id)) return; // answered before the gateway restarted
      this.#d.replies.refuse(
        conn,
        'command-unknown',
        `command ${id} was not sent to this device; the report was ignored`,
      );
      return;
    }
    const sent = found.item;
    if (m.state === 'fetching') {
      // A want already served on this connection is a repeat (a resent stage answered with its
      // progress, a chunk that arrived after the device moved on): TCP delivers what was sent, so
      // serving it again would only double every chunk from here on. A new connection asks afresh.
      if (!m.want) return;
      const key = `${id} ${m.want.offset}`;
      if (this.#served.get(conn) === key) return;
      this.#served.set(conn, key);
      this.#serve(device, sent, m.want);
      return;
    }
    this.#enqueue(sent.rollout, {
      kind: 'report',
      member: device,
      command: id,
      state: m.state,
      ...('code' in m && m.code !== undefined && { code: m.code }),
      ...(m.detail !== undefined && { detail: m.detail }),
    });
  }

  #serve(device: string, sent: Sent, want: { offset: number; length: number }): void {
    const r = this.#rollouts.get(sent.rollout);
    const release = this.#releases.get(sent.rollout);
    if (!r || !release) return;
    this.#chunks
      .serve(device, release.artifact, want, (offset, data) => {
        const conn = this.#askable(device);
        if (!conn) return; // it asks again once back: the stage goes out again then
        this.#d.replies.send(conn, {
          t: 'command',
          op: 'chunk',
          id: this.#d.random(16),
          rollout: r.spec.id,
          deadline: remaining(sent.deadlineAt, this.#d.clock.now()),
          command: fromHex(sent.id),
          offset,
          data,
        });
      })
      .then(
        (o) => {
          if (o.outcome === 'refused')
            this.#d.log.warn({ device, rollout: r.spec.id, detail: o.detail }, 'artifact bytes not sent');
        },
        (err) => this.#d.log.error({ err, device, rollout: r.spec.id }, 'reading the artifact failed'),
      );
  }

  // Bookkeeping.

  #askable(device: string): DeviceConnection | undefined {
    const conn = this.#d.connections.attestedOf(device);
    return conn && conn.trustedUntil > this.#d.clock.now() ? conn : undefined;
  }

  #fresh(device: string): boolean {
    return this.#askable(device) !== undefined;
  }

  /** The entry of `name` in the device's last appraised software log. */
  #running(device: string, name: string) {
    return this.#d.fleet.get(device)?.swLog?.running.find((s) => s.name === name);
  }

  #measured(device: string, name: string): { measured?: string } {
    const sw = this.#running(device, name);
    return sw ? { measured: toHex(sw.digest) } : {};
  }

  /** Whether some rollout held here ever named this command id for this device. */
  #sentBefore(device: string, id: string): boolean {
    for (const rid of this.#byMember.get(device) ?? []) {
      const r = this.#rollouts.get(rid)!;
      if (r.members[device]?.command?.id === id) return true;
      if (r.operations.some((o) => o.told[device] === id || o.cancels?.[device] === id)) return true;
    }
    return false;
  }

  #checkFree(swarm: string, members: readonly string[]): void {
    for (const r of this.#rollouts.values()) {
      if (!HOLDING.has(r.phase)) continue;
      if (r.spec.swarm === swarm)
        throw new RolloutError(
          'rollout-conflict',
          `swarm ${swarm} has rollout ${r.spec.id} (${r.phase}); commit, cancel or roll it back first: one rollout per swarm`,
        );
      const shared = members.filter((m) => r.members[m]);
      if (shared.length > 0)
        throw new RolloutError(
          'rollout-conflict',
          `${shared.slice(0, 5).join(', ')}${shared.length > 5 ? ', …' : ''} ${shared.length > 1 ? 'are members' : 'is a member'} of rollout ${r.spec.id} (swarm ${r.spec.swarm}, ${r.phase}): a device follows one rollout at a time`,
        );
    }
  }

  async #loaded(id: string): Promise<Rollout> {
    const held = this.#rollouts.get(id);
    if (held) return held;
    const stored = await this.#d.store.rollout(id);
    if (!stored)
      throw new RolloutError(
        'rollout-not-found',
        `no rollout ${id}: see GET /v1/rollouts (vigil-gateway rollout list)`,
      );
    await this.#load(stored);
    return stored;
  }

  async #load(r: Rollout): Promise<void> {
    const { name, seq } = r.spec.release;
    const release = await this.#d.store.releaseManifest(name, seq);
    if (!release) {
      this.#d.log.error(
        { rollout: r.spec.id, release: `${name} seq ${seq}` },
        'rollout names a release no longer imported; not resumed',
      );
      return;
    }
    this.#rollouts.set(r.spec.id, r);
    this.#releases.set(r.spec.id, release);
    this.#index(r);
    for (const [id, f] of Object.entries(r.inflight)) this.#open(r.spec.id, id, f);
    this.#arm(r);
  }

  #index(r: Rollout): void {
    const active = !ENDED.has(r.phase) || Object.keys(r.inflight).length > 0;
    for (const m of Object.keys(r.members)) {
      const set = this.#byMember.get(m);
      if (active) {
        if (set) set.add(r.spec.id);
        else this.#byMember.set(m, new Set([r.spec.id]));
      } else if (set) {
        set.delete(r.spec.id);
        if (set.size === 0) this.#byMember.delete(m);
      }
    }
  }

  #pendingOf(device: string): Pending<Sent> {
    let p = this.#pending.get(device);
    if (!p) {
      p = new Pending<Sent>(this.#d.clock, (item) => this.#enqueue(item.rollout, { kind: 'tick' }), 64);
      this.#pending.set(device, p);
    }
    return p;
  }

  #open(rollout: string, id: string, f: InFlight): void {
    const p = this.#pendingOf(f.member);
    if (p.lookup(id).kind === 'unknown') p.open({ id, deadlineAt: f.deadlineAt, rollout });
  }

  #syncPending(before: Rollout, after: Rollout): void {
    const now = this.#d.clock.now();
    for (const [id, f] of Object.entries(after.inflight))
      if (!(id in before.inflight)) this.#open(after.spec.id, id, f);
    for (const [id, f] of Object.entries(before.inflight))
      if (!(id in after.inflight))
        this.#pending.get(f.member)?.settle(id, f.deadlineAt <= now ? 'expired' : 'answered');
  }

  #arm(r: Rollout): void {
    const id = r.spec.id;
    this.#timers.get(id)?.cancel();
    this.#timers.delete(id);
    const due = nextDeadline(r);
    if (due === undefined || this.#closed) return;
    this.#timers.set(
      id,
      this.#d.clock.after(due - this.#d.clock.now(), () => {
        this.#timers.delete(id);
        this.#enqueue(id, { kind: 'tick' });
      }),
    );
  }

  async #recordFloor(r: Rollout): Promise<void> {
    const { swarm, release } = r.spec;
    const current = (await this.#d.store.swarmFloors(swarm)).find((f) => f.name === release.name);
    if (current && current.seq >= release.seq) return;
    this.#d.store.saveSwarmFloor({
      swarm,
      name: release.name,
      seq: release.seq,
      digest: release.digest,
      rollout: r.spec.id,
      committedAt: this.#d.clock.now(),
    });
    await this.#d.store.flush();
    this.#d.log.info(
      { swarm, software: release.name, seq: release.seq },
      "swarm floor raised: the committed release is the swarm's floor",
    );
  }
}
