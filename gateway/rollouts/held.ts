import type { ReleaseManifestRecord } from '../releases/model.ts';
import type { CommandsInFlight } from './in-flight.ts';
import { HOLDING, needsEngine, type Rollout } from './model.ts';

// The rollouts a gateway holds: on one gateway every rollout that still needs the engine, all
// stepped here; with several, those it owns and steps, and copies of the others' (read from the
// store, with their owner) for the members whose connections it holds. Beside them, the release
// each one rolls to (its manifest goes into every `stage`) and the member index: every event of a
// device goes through it, so it lists only rollouts that still need the engine. A rollout's
// members and its commands in flight are indexed together, so the two never disagree.

/** The label a swarm is chosen by (`KEY=VALUE`, checked by the API), split. */
export function swarmLabel(swarm: string): [string, string] {
  const eq = swarm.indexOf('=');
  return [swarm.slice(0, eq), swarm.slice(eq + 1)];
}

export class HeldRollouts {
  readonly #rollouts = new Map<string, Rollout>();
  readonly #releases = new Map<string, ReleaseManifestRecord>();
  /** The rollouts this gateway steps: all of them on one gateway, those it owns with several. */
  readonly #owned = new Set<string>();
  /** The owner of each copy. */
  readonly #owners = new Map<string, string | null>();
  /** Rollouts that still act on a device, by device. */
  readonly #byMember = new Map<string, Set<string>>();

  constructor(private readonly inFlight: CommandsInFlight) {}

  get(id: string): Rollout | undefined {
    return this.#rollouts.get(id);
  }

  release(id: string): ReleaseManifestRecord | undefined {
    return this.#releases.get(id);
  }

  /** Whether this gateway steps the rollout. */
  owns(id: string): boolean {
    return this.#owned.has(id);
  }

  /** The owner of a copy, as last read (null: none yet). */
  ownerOf(id: string): string | null | undefined {
    return this.#owners.get(id);
  }

  owned(): IterableIterator<string> {
    return this.#owned.values();
  }

  all(): IterableIterator<Rollout> {
    return this.#rollouts.values();
  }

  ids(): IterableIterator<string> {
    return this.#rollouts.keys();
  }

  /** The rollouts that still act on a device. */
  of(device: string): Iterable<string> {
    return this.#byMember.get(device) ?? [];
  }

  /** Holds a stored or new rollout: stepped here, or (`copyOf`) a copy of its owner's. */
  hold(r: Rollout, release: ReleaseManifestRecord, copyOf?: { readonly owner: string | null }): void {
    this.#rollouts.set(r.spec.id, r);
    this.#releases.set(r.spec.id, release);
    if (copyOf) this.#owners.set(r.spec.id, copyOf.owner);
    else this.#owned.add(r.spec.id);
    this.index(r);
  }

  /** The rollout's state as read now, its index left as it was (see index). */
  set(r: Rollout): void {
    this.#rollouts.set(r.spec.id, r);
  }

  /**
   * Indexes the rollout's members as `after` has them and follows its commands in flight from
   * `before` (the same rollout as last indexed; none for one just held).
   */
  index(after: Rollout, before?: Rollout): void {
    const active = needsEngine(after);
    for (const m of Object.keys(after.members)) {
      const set = this.#byMember.get(m);
      if (active) {
        if (set) set.add(after.spec.id);
        else this.#byMember.set(m, new Set([after.spec.id]));
      } else if (set) {
        set.delete(after.spec.id);
        if (set.size === 0) this.#byMember.delete(m);
      }
    }
    this.inFlight.sync(before, after);
  }

  /** Holds `after` in place of `before`, the same rollout as last indexed. */
  replace(before: Rollout, after: Rollout): void {
    this.set(after);
    this.index(after, before);
  }

  /** A copy this gateway now steps (it took the rollout over). */
  own(id: string): void {
    this.#owners.delete(id);
    this.#owned.add(id);
  }

  /** A rollout another gateway steps now: held as a copy from here on. */
  disown(id: string): void {
    this.#owned.delete(id);
  }

  /** The owner of a copy, as read now. */
  follow(id: string, owner: string | null): void {
    this.#owners.set(id, owner);
  }

  /** A copy that needs nothing more: its members unindexed, its commands settled, dropped. */
  drop(id: string): void {
    const before = this.#rollouts.get(id);
    if (!before) return;
    this.index({ ...before, phase: 'cancelled', inflight: {} }, before);
    this.#rollouts.delete(id);
    this.#releases.delete(id);
    this.#owners.delete(id);
  }

  /** Whether a rollout that holds its swarm has this device as a member. */
  holdsMember(device: string): boolean {
    for (const id of this.of(device)) if (HOLDING.has(this.#rollouts.get(id)!.phase)) return true;
    return false;
  }

  /** Whether a rollout this gateway steps acts on the device. */
  ownsMember(device: string): boolean {
    for (const id of this.of(device)) if (this.#owned.has(id)) return true;
    return false;
  }

  /** A rollout stepped here that holds a swarm the device is labelled into, if not a member yet. */
  joinable(device: string, labels: Readonly<Record<string, string>>): Rollout | undefined {
    for (const id of this.#owned) {
      const r = this.#rollouts.get(id)!;
      const [key, value] = swarmLabel(r.spec.swarm);
      if (HOLDING.has(r.phase) && labels[key] === value && !r.members[device]) return r;
    }
    return undefined;
  }

  /** Whether some rollout held here ever named this command id for this device. */
  sentBefore(device: string, id: string): boolean {
    for (const rid of this.of(device)) {
      const r = this.#rollouts.get(rid)!;
      if (r.members[device]?.command?.id === id) return true;
      if (r.operations.some((o) => o.told[device] === id || o.cancels?.[device] === id)) return true;
    }
    return false;
  }
}
