import type { Logger } from 'pino';
import type { Clock } from '../../shared/clock.ts';
import type { DeviceRecord, RoundRecord } from '../model.ts';
import type { RolloutPeers, SharedRollouts } from './peers.ts';

// What the gateway that owns a rollout knows of members whose attested connection is on another
// gateway: their holder (the device's claim in Redis), their record (synced from PostgreSQL) and
// their settled rounds (read from PostgreSQL). A member held elsewhere is fresh and good when its
// claim names a live gateway other than this one and its record's posture is good and not past
// its expiry: the same judgement its holder makes of its connection, from what the holder wrote.
// While the bus is down, or its claims are being settled after Redis came back empty, the claims
// last read stand: an outage delays news of a member, it does not make every member absent.

/** Rounds of a device read back per look: more than can settle between two looks. */
const ROUNDS_READ = 8;
/** Round ids remembered per device, so that a round is handed out once. */
const ROUNDS_KEPT = 32;

export interface RemoteMembersDeps {
  readonly peers: RolloutPeers;
  readonly store: Pick<SharedRollouts, 'recentRounds'>;
  readonly fleet: { get(id: string): DeviceRecord | undefined };
  /** Policy `admitWarning`: a warning posture is good when it admits connections. */
  readonly admitWarning: () => boolean;
  readonly clock: Clock;
  readonly log: Logger;
}

export class RemoteMembers {
  readonly #holders = new Map<string, string | null>();
  /** Members judged fresh elsewhere at the last look. */
  readonly #fresh = new Set<string>();
  readonly #handed = new Map<string, string[]>();

  constructor(private readonly d: RemoteMembersDeps) {}

  /** Whether the member is fresh and good on another gateway now. */
  fresh(device: string): boolean {
    const { peers, fleet, clock, admitWarning } = this.d;
    const holder = this.#holders.get(device);
    if (!holder || holder === peers.me || !peers.live().has(holder)) return false;
    const record = fleet.get(device);
    if (!record || record.expires === undefined || record.expires <= clock.now()) return false;
    return record.posture === 'affirming' || (record.posture === 'warning' && admitWarning());
  }

  /** Reads the claims of these devices again (kept as they were while the bus is not settled). */
  async refresh(devices: readonly string[]): Promise<void> {
    if (devices.length === 0 || !this.d.peers.settled()) return;
    try {
      const holders = await this.d.peers.holders(devices);
      for (const [i, device] of devices.entries()) this.#holders.set(device, holders[i] ?? null);
    } catch (err) {
      this.d.log.debug({ err: (err as Error).message }, 'reading claims of rollout members failed; kept');
    }
  }

  /** How the member's freshness elsewhere changed since it was last judged, if it did. */
  judge(device: string): 'fresh' | 'lost' | undefined {
    const now = this.fresh(device);
    if (now === this.#fresh.has(device)) return undefined;
    if (now) this.#fresh.add(device);
    else this.#fresh.delete(device);
    return now ? 'fresh' : 'lost';
  }

  /** The device's rounds settled since the last call, oldest first. */
  async settledRounds(device: string): Promise<RoundRecord[]> {
    const handed = this.#handed.get(device) ?? [];
    const rounds = (await this.d.store.recentRounds(device, ROUNDS_READ))
      .filter((r) => r.state !== 'pending' && !handed.includes(r.id))
      .reverse();
    if (rounds.length > 0)
      this.#handed.set(device, [...handed, ...rounds.map((r) => r.id)].slice(-ROUNDS_KEPT));
    return rounds;
  }

  /** Its holder says the device's attested connection there ended: no longer held there. */
  left(device: string, holder: string): void {
    if (this.#holders.get(device) === holder) this.#holders.set(device, null);
  }

  /** The device attested on this gateway: its freshness is judged from its connection here now. */
  here(device: string): void {
    this.#fresh.delete(device);
    this.#holders.delete(device);
  }
}
