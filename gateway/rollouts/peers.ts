import type { DeviceRecord, RoundRecord } from '../model.ts';
import type { ReportState } from './machine.ts';
import type { Operation, Rollout } from './model.ts';
import type { OperatorAction } from './requests.ts';

// What the rollout engine needs when several gateways share one PostgreSQL store and one Redis
// bus (docs/scale.md, docs/rollouts.md §11): the store's rollouts with their owner, and the other
// gateways. One gateway owns each rollout and is the only one to step it and write its row; every
// other gateway keeps a copy of it, read from the store whenever the owner announces a change, and
// acts for the members it holds: it sends them the commands in flight that the copy names, serves
// their `fetching` reports, asks their swarm rounds and forwards their other reports to the owner.
// The interfaces live here so that the engine depends on what it uses, not on Redis or pg.

/** A stored rollout with the gateway that steps it (null: none yet). */
export interface OwnedRollout {
  readonly rollout: Rollout;
  readonly owner: string | null;
}

/** The rollouts of the shared store (PostgresStore). */
export interface SharedRollouts {
  /** Rollouts this gateway owns that still need an engine (a restarted gateway resumes them). */
  ownRollouts(): Promise<Rollout[]>;
  /** Every rollout that still needs an engine, with its owner. */
  liveRollouts(): Promise<OwnedRollout[]>;
  rolloutRow(id: string): Promise<OwnedRollout | undefined>;
  /**
   * Stores a new rollout owned by this gateway once `check` accepted the stored rollouts that
   * hold a swarm (it throws to refuse), under a lock every gateway takes to start one.
   */
  createRollout(r: Rollout, check: (holding: readonly Rollout[]) => void): Promise<void>;
  /** Stores the new state of a rollout this gateway owns; false when another gateway owns it now. */
  saveOwnedRollout(r: Rollout): Promise<boolean>;
  /** A device's rounds, newest first. */
  recentRounds(deviceId: string, limit: number): Promise<RoundRecord[]>;
  /** Reads these devices again into the fleet (those with no write of this gateway pending). */
  reloadDevices(ids: readonly string[], accept: (records: DeviceRecord[]) => void): Promise<void>;
}

/** An operator request asked of the gateway that owns the rollout. */
export type PeerAsk =
  | { readonly kind: 'act'; readonly rollout: string; readonly action: OperatorAction }
  | {
      readonly kind: 'operate';
      readonly rollout: string;
      readonly name: string;
      /** The args, CBOR, hex. */
      readonly args: string;
      readonly at?: number;
    };

/** The owner's answer: what it did, or why it refused (a RolloutError's code). */
export type PeerAnswer =
  | { readonly ok: true; readonly operation?: Operation }
  | {
      readonly ok: false;
      readonly code: string;
      readonly message: string;
      readonly missing?: readonly string[];
    };

/** A member's report, taken by the gateway holding its attested connection, for the owner. */
export interface ForwardedReport {
  readonly rollout: string;
  readonly device: string;
  readonly command: string;
  readonly state: ReportState;
  readonly code?: string;
  readonly detail?: string;
}

/** What the engine answers to other gateways. */
export interface PeerHandlers {
  ask(from: string, ask: PeerAsk): Promise<PeerAnswer>;
  report(from: string, report: ForwardedReport): void;
  /** The owner asks for the rollout's commands in flight to go out again to the members held here. */
  resend(owner: string, rollout: string): void;
  /** The member's attested connection ended on gateway `from`. */
  left(from: string, rollout: string, device: string): void;
}

/** The other gateways, over the control bus. */
export interface RolloutPeers {
  readonly me: string;
  /** Whether the bus is up and its claims settled (not holding off after Redis came back empty). */
  settled(): boolean;
  /** The gateways alive now (heartbeats in PostgreSQL). */
  live(): ReadonlySet<string>;
  /** How often the owner looks again at members held elsewhere (a third of a claim's expiry). */
  readonly sweepMs: number;
  /** The gateway holding each device's attested connection (its claim), read now. */
  holders(devices: readonly string[]): Promise<(string | null)[]>;
  /** Asks the owner; rejects (RolloutError `owner-unreachable`) when it does not answer in time. */
  ask(owner: string, ask: PeerAsk): Promise<PeerAnswer>;
  /** Sends a report to the owner; false when the bus is down (it was not sent). */
  report(owner: string, report: ForwardedReport): Promise<boolean>;
  /** Asks every gateway to send this rollout's commands in flight again to the members it holds. */
  resend(rollout: string): Promise<boolean>;
  /** Tells the owner that a member's attested connection here ended (its claim goes with it). */
  left(owner: string, rollout: string, device: string): Promise<boolean>;
  serve(handlers: PeerHandlers): void;
}
