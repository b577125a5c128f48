import type { Logger } from 'pino';
import { decodeCbor } from '../../shared/cbor/decode.ts';
import { encodeCbor } from '../../shared/cbor/encode.ts';
import type { CborMap } from '../../shared/cbor/value.ts';
import type { Clock, Random } from '../../shared/clock.ts';
import { MAX_CHUNK_BYTES, REPORT_STATES } from '../../shared/protocol/messages.ts';
import { membersDigest } from '../../shared/protocol/operate-token.ts';
import { fromHex, toHex } from '../../shared/tpm/bytes.ts';
import type { DeviceConnection } from '../connections/device-connection.ts';
import type { Connections } from '../connections/registry.ts';
import type { Replies } from '../connections/replies.ts';
import type { MessageRouter } from '../connections/router.ts';
import type { DeviceRecord, RoundRecord } from '../model.ts';
import type { PostureNotice } from '../posture/fleet.ts';
import type { ArtifactFiles } from '../releases/artifact-files.ts';
import { checkFloor } from '../releases/floor.ts';
import { every } from '../scale/every.ts';
import type { Store } from '../store/store.ts';
import type { EarSigner } from '../verifier/ear.ts';
import { ArtifactChunks } from './chunks.ts';
import { wireCommand } from './commands.ts';
import { Copies } from './copies.ts';
import { Delivery } from './delivery.ts';
import { ROLLOUT_ERRORS, RolloutError, type RolloutErrorCode } from './errors.ts';
import { reportEvent, roundEvent } from './events.ts';
import { HeldRollouts, swarmLabel } from './held.ts';
import { CommandsInFlight } from './in-flight.ts';
import { barrier, createRollout, step } from './machine.ts';
import { HOLDING, needsEngine, type Operation, type Rollout, type RolloutSpec } from './model.ts';
import type { ForwardedReport, PeerAnswer, PeerAsk, RolloutPeers, SharedRollouts } from './peers.ts';
import { RemoteMembers } from './remote-members.ts';
import { MemberReports } from './reports.ts';
import {
  OPERATE_VALIDITY_MS,
  OPERATOR_ACTIONS,
  type OperateRequest,
  type OperatorAction,
  type StartRequest,
} from './requests.ts';
import { Standing } from './standing.ts';
import { Steps } from './steps.ts';
import { TokenBucket } from './token-bucket.ts';
import { type RolloutNotice, type RolloutView, rolloutNotice, rolloutView } from './view.ts';

// The gateway's rollout engine: the pure state machine (machine.ts) driven by what happens to the
// swarm, its effects carried out. Every step of a rollout runs in one queue; a step that changes
// the rollout is stored and committed before any command it produced goes out (write-ahead), so a
// gateway killed at any moment restarts knowing every command id it may have sent, and sends the
// ones still in flight again, with the same ids, when their members attest. Commands go only to a
// connection whose posture is fresh and good, each once per connection, read from the rollout's
// state; convergence is fed from swarm rounds settled on those connections, reading the digest
// from the device's replayed software log.
//
// Several gateways (docs/scale.md, docs/rollouts.md §11): each rollout is owned by one gateway,
// the only one that steps it and writes it. The others keep a copy, read from the store when the
// owner announces a change, and act for the members they hold: they send those members the
// commands in flight the copy names, serve their `fetching` reports, ask the swarm rounds their
// verifying members need and forward their other reports to the owner. The owner learns of
// members held elsewhere from their claims, records and rounds (remote-members.ts). An operator's
// request to a gateway that does not own the rollout goes to the owner.

/** What several gateways add: the shared store's rollouts and the other gateways. */
export interface RolloutScale {
  readonly store: SharedRollouts;
  readonly peers: RolloutPeers;
  /** Policy `admitWarning` (a member held elsewhere in warning is good when it admits). */
  readonly admitWarning: () => boolean;
}

export interface RolloutEngineDeps {
  /** Where artifacts are read from (the gateway directory, filled from the shared store). */
  readonly artifacts: ArtifactFiles;
  readonly store: Store;
  readonly fleet: {
    get(id: string): DeviceRecord | undefined;
    all(): Iterable<DeviceRecord>;
    load(records: readonly DeviceRecord[]): void;
  };
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
  /** Several gateways on one PostgreSQL store and one Redis bus. */
  readonly scale?: RolloutScale;
}

export class RolloutEngine {
  readonly #d: RolloutEngineDeps;
  readonly #inFlight: CommandsInFlight;
  readonly #held: HeldRollouts;
  /** The connection each device was last seen fresh and good on: a change is an `attested`. */
  readonly #freshOn = new Map<string, DeviceConnection>();
  readonly #delivery: Delivery;
  readonly #remote: RemoteMembers | undefined;
  readonly #standing: Standing;
  readonly #steps: Steps;
  /** Several gateways: copies of rollouts owned elsewhere. */
  readonly #copies: Copies | undefined;
  readonly #bucket: TokenBucket;
  readonly #reports: MemberReports;
  #stopSweep: (() => void) | undefined;

  private constructor(deps: RolloutEngineDeps) {
    this.#d = deps;
    this.#inFlight = new CommandsInFlight(deps.clock, (rollout) =>
      this.#steps.enqueue(rollout, { kind: 'tick' }),
    );
    this.#held = new HeldRollouts(this.#inFlight);
    this.#bucket = new TokenBucket(deps.artifactBytesPerSecond, deps.clock, MAX_CHUNK_BYTES);
    this.#delivery = new Delivery({
      askable: (device) => this.#standing.askable(device),
      send: (conn, r, id, f) =>
        deps.replies.send(
          conn,
          wireCommand(r, id, f, this.#held.release(r.spec.id)!.manifest, deps.clock.now()),
        ),
      copy: (id) => !this.#held.owns(id),
      startRound: deps.startRound,
      clock: deps.clock,
    });
    if (deps.scale)
      this.#remote = new RemoteMembers({
        peers: deps.scale.peers,
        store: deps.scale.store,
        fleet: deps.fleet,
        admitWarning: deps.scale.admitWarning,
        clock: deps.clock,
        log: deps.log,
      });
    this.#standing = new Standing({
      connections: deps.connections,
      fleet: deps.fleet,
      remote: this.#remote,
      clock: deps.clock,
    });
    this.#steps = new Steps({
      held: this.#held,
      standing: this.#standing,
      store: deps.store,
      shared: deps.scale?.store,
      delivery: this.#delivery,
      follow: async (row) => this.#copies?.copy(row),
      startRound: deps.startRound,
      publish: deps.publish,
      clock: deps.clock,
      random: deps.random,
      log: deps.log,
    });
    if (deps.scale)
      this.#copies = new Copies({
        held: this.#held,
        steps: this.#steps,
        delivery: this.#delivery,
        store: deps.scale.store,
        peers: deps.scale.peers,
        log: deps.log,
      });
    this.#reports = new MemberReports({
      held: this.#held,
      inFlight: this.#inFlight,
      standing: this.#standing,
      chunks: new ArtifactChunks(deps.artifacts, this.#bucket),
      replies: deps.replies,
      take: (report) => this.#steps.enqueue(report.rollout, reportEvent(report)),
      forward: (report) => this.#copies?.forward(report),
      clock: deps.clock,
      random: deps.random,
      log: deps.log,
    });
  }

  /**
   * The engine with every rollout that still needs it resumed from the store: deadlines re-armed.
   * With several gateways, the rollouts this gateway owns; the others' are held as copies.
   */
  static async open(deps: RolloutEngineDeps): Promise<RolloutEngine> {
    const engine = new RolloutEngine(deps);
    const scale = deps.scale;
    if (!scale) {
      for (const r of await deps.store.rollouts()) if (needsEngine(r)) await engine.#steps.load(r);
    } else {
      for (const r of await scale.store.ownRollouts()) await engine.#steps.load(r);
      for (const row of await scale.store.liveRollouts())
        if (!engine.#held.owns(row.rollout.spec.id)) await engine.#steps.load(row.rollout, row);
      scale.peers.serve({
        ask: (from, ask) => engine.#answer(from, ask),
        report: (from, report) => engine.#forwarded(from, report),
        resend: (owner, rollout) => engine.#copies!.resendAsked(owner, rollout),
        left: (from, rollout, device) => engine.#left(from, rollout, device),
      });
      engine.#stopSweep = every(deps.clock, scale.peers.sweepMs, () => engine.#sweep());
    }
    const resumed = [...engine.#held.owned()].map((id) => engine.#held.get(id)!);
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
    this.#reports.register(router);
  }

  // What happens to the swarm.

  /** A round settled (AttestationObserver): convergence, and devices becoming fresh and good. */
  roundSettled(record: RoundRecord): void {
    const device = record.deviceId;
    for (const id of this.#held.of(device)) {
      const r = this.#held.get(id)!;
      if (!this.#held.owns(id)) {
        this.#delivery.roundSettled(r, record);
        continue;
      }
      const event = roundEvent(record, this.#standing.measured(record.deviceId, r.spec.release.name));
      void this.#steps
        .run(async () => {
          await this.#steps.apply(id, event);
          // A round that could not show convergence (issued before activate, another reason): ask
          // for the swarm round again while the member is still waiting for one.
          if (this.#held.get(id)?.members[device]?.state === 'verifying') {
            const conn = this.#standing.askable(device);
            if (conn) this.#d.startRound(conn);
          }
        })
        .catch((err) => this.#steps.failed(id, err));
    }
    const conn = this.#standing.askable(device);
    if (conn === undefined) this.#freshOn.delete(device);
    else if (this.#freshOn.get(device) !== conn) {
      this.#freshOn.set(device, conn);
      this.#attested(device, conn);
    }
    if (conn !== undefined && !this.#held.holdsMember(device)) this.#joinSwarms(device);
  }

  /** A posture changed (the fleet's event): a member no longer fresh may break the barrier. */
  postureChanged(notice: PostureNotice): void {
    if (this.#standing.askable(notice.id) === undefined) {
      this.#freshOn.delete(notice.id);
      // Held elsewhere: what the event says is read back with the member's claim.
      if (this.#remote && this.#held.ownsMember(notice.id)) this.#lookSoon([notice.id], 'none');
    }
    for (const id of this.#held.of(notice.id))
      if (this.#held.owns(id)) this.#steps.enqueue(id, { kind: 'lost', member: notice.id });
  }

  /** A device connection closed. */
  closed(conn: DeviceConnection): void {
    if (this.#freshOn.get(conn.deviceId) !== conn) return;
    this.#freshOn.delete(conn.deviceId);
    for (const id of this.#held.of(conn.deviceId)) {
      if (this.#held.owns(id)) this.#steps.enqueue(id, { kind: 'lost', member: conn.deviceId });
      else this.#copies?.tellLeft(id, conn.deviceId);
    }
  }

  // What other gateways say (several gateways).

  /** A round of this device settled on another gateway (its event). */
  heardRound(device: string): void {
    if (!this.#remote || this.#steps.closed || this.#standing.askable(device)) return;
    if (
      this.#held.ownsMember(device) ||
      (!this.#held.holdsMember(device) &&
        this.#held.joinable(device, this.#d.fleet.get(device)?.labels ?? {}))
    )
      this.#lookSoon([device], 'all');
  }

  /** Another gateway changed a rollout (its event): a copy is read again. */
  heardRollout(id: string): void {
    if (this.#copies && !this.#steps.closed && !this.#held.owns(id)) this.#copies.refreshSoon(id);
  }

  /**
   * The control bus is back: what it may have dropped is read from the store. Copies are read
   * again and their commands in flight sent again to the members held here (a report forwarded
   * while the bus was away is lost; the device repeats it for a repeated command id); the
   * rollouts owned here are announced again, and their holders asked to send again too.
   */
  busUp(): void {
    const scale = this.#d.scale;
    const copies = this.#copies;
    if (!scale || !copies || this.#steps.closed) return;
    void this.#steps
      .run(async () => {
        await copies.reread(await scale.store.liveRollouts());
        for (const id of this.#held.owned()) {
          const r = this.#held.get(id)!;
          if (!needsEngine(r)) continue;
          this.#d.publish(rolloutNotice(r, (m) => this.#standing.fresh(m)));
          void scale.peers.resend(id);
        }
      })
      .catch((err: Error) => this.#d.log.warn({ err: err.message }, 'reading rollouts again failed'));
    void this.#sweep();
  }

  /** Rollouts of gateways that stopped heartbeating, taken over by this one (membership.ts). */
  adopt(rollouts: readonly Rollout[]): void {
    const scale = this.#d.scale;
    if (!scale || this.#steps.closed) return;
    for (const r of rollouts) {
      const id = r.spec.id;
      void this.#steps
        .run(async () => {
          const before = this.#held.get(id);
          const from = this.#held.ownerOf(id) ?? null;
          if (before) {
            this.#held.own(id);
            this.#held.replace(before, r);
          } else await this.#steps.load(r);
          if (!this.#held.owns(id)) return; // its release is gone (logged)
          this.#d.log.warn(
            { rollout: id, from, phase: r.phase, inflight: Object.keys(r.inflight).length },
            'took over a rollout whose gateway stopped heartbeating: its commands in flight go out again with their ids',
          );
          this.#steps.arm(r);
          // Reports the previous owner took and did not store come again: the devices answer a
          // repeated command id with the state they reached.
          this.#delivery.rollout(r, true);
          void scale.peers.resend(id);
          this.#d.publish(rolloutNotice(r, (m) => this.#standing.fresh(m)));
          this.#lookSoon(Object.keys(r.members), 'all');
          await this.#steps.apply(id, { kind: 'tick' });
        })
        .catch((err) => this.#steps.failed(id, err));
    }
  }

  // Operator actions.

  async start(req: StartRequest): Promise<Rollout> {
    return this.#steps.run(async () => {
      const { store, clock } = this.#d;
      const [key, value] = swarmLabel(req.swarm);
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
      const located = await this.#d.artifacts.locate(release.artifact);
      if (!located.ok) throw new RolloutError('release-not-found', `${name} ${version}: ${located.detail}`);
      this.#checkFree(req.swarm, members, this.#held.all());
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
      const scale = this.#d.scale;
      if (scale) {
        // Members held elsewhere are judged by their claims from the first wave on.
        await this.#remote!.refresh(members.filter((m) => !this.#standing.askable(m)));
        // Another gateway may have started one on this swarm a moment ago: checked again, in turn.
        await scale.store.createRollout(r, (holding) => this.#checkFree(req.swarm, members, holding));
      }
      this.#held.hold(r, release);
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
      await this.#steps.apply(spec.id, { kind: 'start' });
      return this.#held.get(spec.id)!;
    });
  }

  async act(id: string, action: OperatorAction): Promise<Rollout> {
    if (this.#elsewhere(id)) {
      await this.#ask(id, { kind: 'act', rollout: id, action });
      return (await this.get(id))!;
    }
    return this.#steps.run(async () => {
      await this.#steps.loaded(id);
      const s = await this.#steps.apply(id, { kind: action });
      if (s?.refused) throw new RolloutError('rollout-refused', `${action} ${id}: ${s.refused}`);
      this.#d.log.info({ rollout: id, action }, `rollout ${action} by an operator`);
      return this.#held.get(id)!;
    });
  }

  /**
   * Releases an operation to the converged members, with a token signed over them, if the barrier
   * holds now; refuses with who is missing otherwise.
   */
  async operate(id: string, req: OperateRequest): Promise<Operation> {
    if (this.#elsewhere(id)) {
      const answer = await this.#ask(id, {
        kind: 'operate',
        rollout: id,
        name: req.name,
        args: toHex(encodeCbor(req.args)),
        ...(req.at !== undefined && { at: req.at }),
      });
      if (!answer.operation) throw new Error(`the owner of rollout ${id} released no operation`);
      return answer.operation;
    }
    return this.#steps.run(async () => {
      const r = await this.#steps.loaded(id);
      // The barrier is judged on claims read now for members held elsewhere.
      await this.#remote?.refresh(Object.keys(r.members).filter((m) => !this.#standing.askable(m)));
      const now = this.#d.clock.now();
      const at = req.at ?? now;
      const exp = Math.max(at, now) + OPERATE_VALIDITY_MS;
      const b = barrier(r, (m) => this.#standing.fresh(m));
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
      const s = await this.#steps.apply(id, {
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
      const op = this.#held.get(id)!.operations.at(-1)!;
      this.#d.log.info(
        { rollout: id, operation: op.id, name: op.name, at: op.at, members: Object.keys(op.told).length },
        'operation released: the barrier holds',
      );
      return op;
    });
  }

  /** A rollout as the engine steps it, else as stored (a copy may be behind the store). */
  async get(id: string): Promise<Rollout | undefined> {
    const held = this.#held.owns(id) || !this.#d.scale ? this.#held.get(id) : undefined;
    return held ?? (await this.#d.store.rollout(id));
  }

  async view(id: string): Promise<RolloutView | undefined> {
    const r = await this.get(id);
    if (!r) return undefined;
    await this.#remote?.refresh(Object.keys(r.members).filter((m) => !this.#standing.askable(m)));
    return rolloutView(r, {
      fresh: (m) => this.#standing.fresh(m),
      running: (m, name) => {
        const sw = this.#standing.running(m, name);
        return sw && { digest: toHex(sw.digest), version: sw.version };
      },
    });
  }

  async list(): Promise<RolloutNotice[]> {
    const stored = await this.#d.store.rollouts();
    const all = stored.map((r) => (this.#held.owns(r.spec.id) ? this.#held.get(r.spec.id)! : r));
    const members = all.filter((r) => HOLDING.has(r.phase)).flatMap((r) => Object.keys(r.members));
    await this.#remote?.refresh(members.filter((m) => !this.#standing.askable(m)));
    return all.map((r) => rolloutNotice(r, (m) => this.#standing.fresh(m)));
  }

  /** Resolves once every step queued so far is done (tests, shutdown). */
  idle(): Promise<void> {
    return this.#steps.idle();
  }

  async close(): Promise<void> {
    this.#steps.close();
    this.#stopSweep?.();
    this.#inFlight.drain();
    this.#bucket.close();
    await this.#steps.idle();
  }

  /** A device became fresh and good on `conn`: send what is in flight for it, tell its rollouts. */
  #attested(device: string, conn: DeviceConnection): void {
    this.#remote?.here(device);
    for (const id of this.#held.of(device)) {
      void this.#steps
        .run(async () => {
          const r = this.#held.get(id);
          if (!r) return;
          this.#delivery.member(r, device, conn);
          await this.#steps.apply(id, { kind: 'attested', member: device });
        })
        .catch((err) => this.#steps.failed(id, err));
    }
  }

  /** A device labelled into a swarm after its rollout started joins it, at its next good round. */
  #joinSwarms(device: string): void {
    // One rollout at a time for a device; the owner of the rollout decides.
    const r = this.#held.joinable(device, this.#d.fleet.get(device)?.labels ?? {});
    if (r) this.#steps.enqueue(r.spec.id, { kind: 'join', member: device });
  }

  // Several gateways: the owner's side.

  /** Whether the rollout is stepped by another gateway (a request goes to it). */
  #elsewhere(id: string): boolean {
    return this.#d.scale !== undefined && !this.#held.owns(id);
  }

  /** Asks the owner; its refusal comes back as the RolloutError it raised. */
  async #ask(id: string, ask: PeerAsk): Promise<Extract<PeerAnswer, { ok: true }>> {
    const { store, peers } = this.#d.scale!;
    const row = await store.rolloutRow(id);
    if (!row)
      throw new RolloutError(
        'rollout-not-found',
        `no rollout ${id}: see GET /v1/rollouts (vigil-gateway rollout list)`,
      );
    // Ended: every request is refused, whoever owned it; the machine says why.
    if (!needsEngine(row.rollout)) {
      const s = step(
        row.rollout,
        ask.kind === 'act' ? { kind: ask.action } : { kind: 'tick' },
        this.#steps.context(),
      );
      throw new RolloutError(
        'rollout-refused',
        `${ask.kind === 'act' ? ask.action : 'operate'} ${id}: ${s.refused ?? `the rollout is ${row.rollout.phase}`}`,
      );
    }
    const owner = row.owner;
    if (owner === null || owner === peers.me || !peers.live().has(owner))
      throw new RolloutError(
        'owner-unreachable',
        `rollout ${id} has no live gateway running it now (${owner === null ? 'none took it yet' : owner === peers.me ? 'this gateway is taking it over' : `gateway ${owner} stopped heartbeating`}): a surviving gateway takes it over at its next heartbeat; ask again in a few seconds`,
      );
    const answer = await peers.ask(owner, ask);
    this.#copies!.refreshSoon(id);
    if (answer.ok) return answer;
    if ((ROLLOUT_ERRORS as readonly string[]).includes(answer.code))
      throw new RolloutError(answer.code as RolloutErrorCode, answer.message, answer.missing);
    throw new Error(`gateway ${owner}, which runs rollout ${id}: ${answer.message}`);
  }

  /** An operator's request asked of another gateway, for a rollout owned here. */
  async #answer(from: string, ask: PeerAsk): Promise<PeerAnswer> {
    if (!this.#held.owns(ask.rollout) || this.#steps.closed)
      return {
        ok: false,
        code: 'owner-unreachable',
        message: `gateway ${this.#d.scale!.peers.me} does not run rollout ${ask.rollout} (any more): ask again`,
      };
    this.#d.log.info({ rollout: ask.rollout, ask: ask.kind, from }, 'a rollout request from another gateway');
    try {
      if (ask.kind === 'act') {
        if (!(OPERATOR_ACTIONS as readonly string[]).includes(ask.action))
          return { ok: false, code: 'rollout-refused', message: `no action ${JSON.stringify(ask.action)}` };
        await this.act(ask.rollout, ask.action);
        return { ok: true };
      }
      const operation = await this.operate(ask.rollout, {
        name: ask.name,
        args: decodeCbor(fromHex(ask.args)) as CborMap,
        ...(ask.at !== undefined && { at: ask.at }),
      });
      return { ok: true, operation };
    } catch (e) {
      if (!(e instanceof RolloutError)) throw e;
      return { ok: false, code: e.code, message: e.message, ...(e.missing && { missing: e.missing }) };
    }
  }

  /** A report a member held by another gateway sent; taken as if from the member itself. */
  #forwarded(from: string, fr: ForwardedReport): void {
    if (!this.#held.owns(fr.rollout) || this.#steps.closed) return;
    if (!(REPORT_STATES as readonly string[]).includes(fr.state)) return;
    const found = this.#inFlight.lookup(fr.device, fr.command);
    if (found?.kind !== 'open' || found.item.rollout !== fr.rollout) return; // late, or not ours
    this.#d.log.debug(
      { rollout: fr.rollout, device: fr.device, state: fr.state, from },
      'report via another gateway',
    );
    this.#steps.enqueue(fr.rollout, reportEvent(fr));
  }

  /** A member's holder says its attested connection there ended (its claim is being released). */
  #left(from: string, rollout: string, device: string): void {
    if (!this.#held.owns(rollout) || this.#steps.closed || this.#standing.askable(device)) return;
    this.#remote!.left(device, from);
    this.#remote!.judge(device);
    for (const id of this.#held.of(device))
      if (this.#held.owns(id)) this.#steps.enqueue(id, { kind: 'lost', member: device });
  }

  /** Every third of a claim's expiry: claims of members held elsewhere, rounds of those verifying. */
  async #sweep(): Promise<void> {
    if (!this.#remote || this.#steps.closed) return;
    const far = new Set<string>();
    for (const id of this.#held.owned()) {
      const r = this.#held.get(id)!;
      if (needsEngine(r)) for (const m of Object.keys(r.members)) if (!this.#standing.askable(m)) far.add(m);
    }
    if (far.size > 0) await this.#lookSoon([...far], 'verifying');
  }

  #lookSoon(devices: readonly string[], rounds: 'all' | 'verifying' | 'none'): Promise<void> {
    return this.#look(devices, rounds).catch((err: Error) =>
      this.#d.log.warn(
        { err: err.message },
        'looking at rollout members on other gateways failed; looked at again',
      ),
    );
  }

  /**
   * Looks again at devices held elsewhere: their claims, then (for `rounds`) their rounds settled
   * since and their records as stored; feeds what changed to the rollouts owned here. Rounds are
   * read before records: a round's device row is committed with it or before it, so the record
   * read after shows what that round's log showed, or later.
   */
  async #look(devices: readonly string[], rounds: 'all' | 'verifying' | 'none'): Promise<void> {
    const remote = this.#remote!;
    const far = devices.filter((d) => this.#standing.askable(d) === undefined);
    if (far.length === 0) return;
    await remote.refresh(far);
    const scan = far.filter(
      (d) =>
        rounds === 'all' ||
        (rounds === 'verifying' &&
          [...this.#held.of(d)].some(
            (id) => this.#held.owns(id) && this.#held.get(id)!.members[d]?.state === 'verifying',
          )),
    );
    const settled = new Map<string, RoundRecord[]>();
    for (const d of scan) settled.set(d, await remote.settledRounds(d));
    if (scan.length > 0)
      await this.#d.scale!.store.reloadDevices(scan, (records) => this.#d.fleet.load(records));
    for (const d of far) {
      if (this.#standing.askable(d)) continue; // it attested here meanwhile
      const change = remote.judge(d);
      for (const id of this.#held.of(d)) {
        if (!this.#held.owns(id)) continue;
        const name = this.#held.get(id)!.spec.release.name;
        if (change) this.#steps.enqueue(id, { kind: change === 'fresh' ? 'attested' : 'lost', member: d });
        for (const round of settled.get(d) ?? [])
          this.#steps.enqueue(id, roundEvent(round, this.#standing.measured(round.deviceId, name)));
      }
      if (!this.#held.holdsMember(d) && remote.fresh(d)) this.#joinSwarms(d);
    }
  }

  // Bookkeeping.

  #checkFree(swarm: string, members: readonly string[], rollouts: Iterable<Rollout>): void {
    for (const r of rollouts) {
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
}
