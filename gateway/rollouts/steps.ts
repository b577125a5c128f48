import type { Logger } from 'pino';
import type { Clock, Random, Timer } from '../../shared/clock.ts';
import { toHex } from '../../shared/tpm/bytes.ts';
import type { DeviceConnection } from '../connections/device-connection.ts';
import type { Store } from '../store/store.ts';
import type { Delivery } from './delivery.ts';
import { RolloutError } from './errors.ts';
import type { HeldRollouts } from './held.ts';
import { nextDeadline, type RolloutEvent, type Step, type StepContext, step } from './machine.ts';
import type { Rollout } from './model.ts';
import type { OwnedRollout, SharedRollouts } from './peers.ts';
import type { Standing } from './standing.ts';
import { type RolloutNotice, rolloutNotice } from './view.ts';

// The owner's side of a rollout: the pure machine (machine.ts) stepped in one queue, its effects
// carried out. A step that changes the rollout is stored and committed before any command it
// produced goes out (write-ahead), so a gateway killed at any moment restarts knowing every
// command id it may have sent, and sends the ones still in flight again, with the same ids, when
// their members attest. With several gateways the store refuses the step of a gateway that is no
// longer the owner: nothing of that step goes out, and the rollout is followed as a copy.

export interface StepsDeps {
  readonly held: HeldRollouts;
  readonly standing: Pick<Standing, 'askable' | 'fresh'>;
  readonly store: Store;
  /** Several gateways: the shared store, where only the owner's write of a rollout lands. */
  readonly shared: SharedRollouts | undefined;
  /** What a rollout has in flight goes to the members held here. */
  readonly delivery: Pick<Delivery, 'rollout'>;
  /** Another gateway took the rollout over: this one follows it, as stored, as a copy. */
  readonly follow: (row: OwnedRollout) => Promise<void>;
  /** Issues a `swarm` round on an attested connection (or leaves the one in flight). */
  readonly startRound: (conn: DeviceConnection) => void;
  readonly publish: (notice: RolloutNotice) => void;
  readonly clock: Clock;
  readonly random: Random;
  readonly log: Logger;
}

/** A rollout's state apart from when it was stepped: a step that leaves it equal stores nothing. */
export const stateKey = (r: Rollout) => JSON.stringify({ ...r, updatedAt: 0 });

export class Steps {
  readonly #timers = new Map<string, Timer>();
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(private readonly d: StepsDeps) {}

  /** Whether the engine is closing: nothing is stepped any more. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Runs `work` after every step queued before it: all that reads and changes rollouts goes here. */
  run<T>(work: () => Promise<T>): Promise<T> {
    const p = this.#queue.then(work);
    this.#queue = p.catch(() => undefined);
    return p;
  }

  enqueue(id: string, event: RolloutEvent): void {
    void this.run(() => this.apply(id, event)).catch((err) => this.failed(id, err));
  }

  failed(id: string, err: unknown): void {
    this.d.log.error({ err, rollout: id }, 'a rollout step failed; the rollout stays as last stored');
  }

  context(): StepContext {
    return {
      now: this.d.clock.now(),
      newId: () => toHex(this.d.random(16)),
      fresh: (m: string) => this.d.standing.fresh(m),
    };
  }

  /** Steps a rollout owned here (in the queue); undefined when it is not stepped here (any more). */
  async apply(id: string, event: RolloutEvent): Promise<Step | undefined> {
    const { held } = this.d;
    const before = held.get(id);
    if (!before || this.#closed || !held.owns(id)) return undefined;
    const s = step(before, event, this.context());
    if (s.refused) return s;
    const after = s.rollout;
    const changed = stateKey(before) !== stateKey(after);
    if (changed) {
      held.set(after);
      // Write-ahead: no command leaves before the state naming its id is committed.
      if (!(await this.#save(after))) {
        await this.#lost(id, before);
        return undefined;
      }
    }
    held.index(after, before);
    this.d.delivery.rollout(after);
    for (const e of s.effects) {
      if (e.kind !== 'swarm-round') continue;
      // A member held elsewhere gets its swarm round from its holder, which reads the state.
      const conn = this.d.standing.askable(e.member);
      if (conn) this.d.startRound(conn);
    }
    if (changed) {
      if (after.phase !== before.phase)
        this.d.log.info(
          { rollout: id, from: before.phase, to: after.phase, why: after.why },
          'rollout phase',
        );
      if (after.phase === 'committed' && before.phase !== 'committed') await this.#recordFloor(after);
      this.d.publish(rolloutNotice(after, (m) => this.d.standing.fresh(m)));
    }
    this.arm(after);
    return s;
  }

  /** The rollout as held, else as stored, then held (an ended one, for an operator's action). */
  async loaded(id: string): Promise<Rollout> {
    const held = this.d.held.get(id);
    if (held) return held;
    const stored = await this.d.store.rollout(id);
    if (!stored)
      throw new RolloutError(
        'rollout-not-found',
        `no rollout ${id}: see GET /v1/rollouts (vigil-gateway rollout list)`,
      );
    await this.load(stored);
    return stored;
  }

  /** Holds a stored rollout: stepped here, or (`copyOf`) a copy of its owner's. */
  async load(r: Rollout, copyOf?: { readonly owner: string | null }): Promise<void> {
    const { name, seq } = r.spec.release;
    const release = await this.d.store.releaseManifest(name, seq);
    if (!release) {
      this.d.log.error(
        { rollout: r.spec.id, release: `${name} seq ${seq}` },
        'rollout names a release no longer imported; not resumed',
      );
      return;
    }
    this.d.held.hold(r, release, copyOf);
    this.arm(r);
  }

  /** Deadlines of a rollout stepped here. */
  arm(r: Rollout): void {
    const id = r.spec.id;
    this.#timers.get(id)?.cancel();
    this.#timers.delete(id);
    const due = nextDeadline(r);
    if (due === undefined || this.#closed || !this.d.held.owns(id)) return;
    this.#timers.set(
      id,
      this.d.clock.after(due - this.d.clock.now(), () => {
        this.#timers.delete(id);
        this.enqueue(id, { kind: 'tick' });
      }),
    );
  }

  /** Resolves once every step queued so far is done. */
  idle(): Promise<void> {
    return this.#queue.then(() => undefined);
  }

  /** Steps no more and stops every deadline; what is queued runs out (see idle). */
  close(): void {
    this.#closed = true;
    for (const t of this.#timers.values()) t.cancel();
    this.#timers.clear();
  }

  /** Stores a step; false when another gateway owns the rollout now. */
  async #save(r: Rollout): Promise<boolean> {
    if (this.d.shared) return this.d.shared.saveOwnedRollout(r);
    this.d.store.saveRollout(r);
    await this.d.store.flush();
    return true;
  }

  /** Another gateway took the rollout over: this one follows it as a copy from now on. */
  async #lost(id: string, before: Rollout): Promise<void> {
    this.d.held.disown(id);
    this.#timers.get(id)?.cancel();
    this.#timers.delete(id);
    this.d.held.set(before);
    const row = await this.d.shared?.rolloutRow(id);
    this.d.log.warn(
      { rollout: id, owner: row?.owner },
      'a rollout step was refused: another gateway took the rollout over; nothing of the step went out',
    );
    if (row) await this.d.follow(row);
  }

  async #recordFloor(r: Rollout): Promise<void> {
    const { swarm, release } = r.spec;
    const current = (await this.d.store.swarmFloors(swarm)).find((f) => f.name === release.name);
    if (current && current.seq >= release.seq) return;
    this.d.store.saveSwarmFloor({
      swarm,
      name: release.name,
      seq: release.seq,
      digest: release.digest,
      rollout: r.spec.id,
      committedAt: this.d.clock.now(),
    });
    await this.d.store.flush();
    this.d.log.info(
      { swarm, software: release.name, seq: release.seq },
      "swarm floor raised: the committed release is the swarm's floor",
    );
  }
}
