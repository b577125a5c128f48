import type { Logger } from 'pino';
import type { Clock, Timer } from '../../shared/clock.ts';
import type { ResultCode } from '../../shared/protocol/index.ts';
import type { DeviceRecord, Posture, PostureEvent } from '../model.ts';
import type { StoreWriter } from '../store/store.ts';
import { changed, nextPosture, type PostureInput } from './posture.ts';

/** The JSON a back end reads, retained, on vigil/v1/fleet/{id}. */
export interface PostureNotice {
  readonly id: string;
  readonly posture: Posture;
  readonly reasons: readonly ResultCode[];
  readonly expires: number | null;
  readonly at: number;
  readonly round: string | null;
  readonly labels: Readonly<Record<string, string>>;
}

export interface FleetHooks {
  /** Called on every posture change, after it was stored. */
  postureChanged(notice: PostureNotice): void;
  /**
   * Several gateways (gateway/scale): whether this gateway turns this device stale when its
   * expiry comes due (one gateway of the fleet does). Absent: always.
   */
  mayLapse?(id: string): boolean;
}

/**
 * The fleet's device records: an in-memory view over the store (every change written through),
 * posture moved by the rules of posture.ts with its history, and the expiry clock that turns a
 * device whose posture is not renewed stale.
 */
export class Fleet {
  private readonly devices = new Map<string, DeviceRecord>();
  private readonly expiries = new Map<string, Timer>();

  constructor(
    private readonly store: StoreWriter,
    private readonly hooks: FleetHooks,
    /** Policy's grace after `expires` before an unrenewed posture turns stale. */
    private readonly graceMs: () => number,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  /** Takes the stored records; re-arms expiries, so a restart forgets none (a past one fires at once). */
  load(devices: readonly DeviceRecord[]): void {
    for (const d of devices) {
      this.devices.set(d.id, d);
      this.armExpiry(d);
    }
  }

  get(id: string): DeviceRecord | undefined {
    return this.devices.get(id);
  }

  all(): IterableIterator<DeviceRecord> {
    return this.devices.values();
  }

  get size(): number {
    return this.devices.size;
  }

  /** Stores a changed record that keeps its posture (labels, AK, logs...). */
  save(d: DeviceRecord): DeviceRecord {
    this.devices.set(d.id, d);
    this.store.saveDevice(d);
    return d;
  }

  /**
   * Applies what happened to a device's posture (posture.ts decides). `d` is the record as it
   * should be stored if the posture moves (the caller's other updates merged in); when the rules
   * leave the posture as it is, nothing is stored and the current record is returned.
   */
  apply(d: DeviceRecord, input: PostureInput, round?: string): DeviceRecord {
    const next = nextPosture(d, input);
    if (next === undefined) return this.devices.get(d.id) ?? d;
    const at = this.clock.now();
    const { expires: _previous, ...rest } = d;
    const record: DeviceRecord = {
      ...rest,
      posture: next.posture,
      reasons: next.reasons,
      lastSeen: at,
      ...(next.expires !== undefined && { expires: next.expires }),
      ...(round !== undefined && { lastRound: round }),
    };
    this.save(record);
    this.armExpiry(record);
    if (changed(d, next)) {
      const event: PostureEvent = {
        deviceId: d.id,
        at,
        from: d.posture,
        to: next.posture,
        reasons: next.reasons,
        ...(round && { round }),
      };
      this.store.addPostureEvent(event);
      this.log.info(
        { device: d.id, from: d.posture, to: next.posture, reasons: next.reasons, round },
        'posture changed',
      );
      this.hooks.postureChanged(notice(record, at));
    }
    return record;
  }

  /** Republishes every device's posture, e.g. after a restart emptied the broker's retained store. */
  announceAll(): void {
    const now = this.clock.now();
    for (const d of this.devices.values()) this.hooks.postureChanged(notice(d, now));
  }

  /** Republishes one device's posture (its labels changed: back ends filter by them). */
  announce(id: string): void {
    const d = this.devices.get(id);
    if (d) this.hooks.postureChanged(notice(d, this.clock.now()));
  }

  private armExpiry(d: DeviceRecord): void {
    this.expiries.get(d.id)?.cancel();
    this.expiries.delete(d.id);
    if ((d.posture !== 'affirming' && d.posture !== 'warning') || d.expires === undefined) return;
    const expires = d.expires;
    const timer = this.clock.after(expires + this.graceMs() - this.clock.now(), () => {
      this.expiries.delete(d.id);
      const current = this.devices.get(d.id);
      if (current && (this.hooks.mayLapse?.(d.id) ?? true)) this.apply(current, { kind: 'lapsed', expires });
    });
    this.expiries.set(d.id, timer);
  }

  close(): void {
    for (const t of this.expiries.values()) t.cancel();
    this.expiries.clear();
  }
}

export function notice(d: DeviceRecord, at: number): PostureNotice {
  return {
    id: d.id,
    posture: d.posture,
    reasons: d.reasons,
    expires: d.expires ?? null,
    at,
    round: d.lastRound ?? null,
    labels: d.labels,
  };
}
