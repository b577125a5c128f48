import type { Logger } from 'pino';
import type { ResultCode } from '../../shared/protocol/index.ts';
import type { DeviceRecord, Posture, PostureEvent } from '../model.ts';
import type { PostureStore } from '../store/store.ts';

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
}

/**
 * The fleet's device records: an in-memory view over the store (every change written through),
 * posture transitions with their history, and the expiry clock that turns a silent device stale.
 */
export class Fleet {
  private readonly devices = new Map<string, DeviceRecord>();
  private readonly expiries = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly store: PostureStore,
    private readonly hooks: FleetHooks,
    /** Policy's grace after `expires` before an unrenewed posture turns stale. */
    private readonly graceMs: () => number,
    private readonly log: Logger,
  ) {}

  /** Loads every device; re-arms expiries, so a restart forgets none (a past one fires at once). */
  load(): void {
    for (const d of this.store.loadDevices()) {
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

  /** Moves a device to a posture, recording the event and notifying back ends when it changed. */
  transition(
    d: DeviceRecord,
    to: Posture,
    reasons: readonly ResultCode[],
    at: number,
    expires?: number,
    round?: string,
  ): DeviceRecord {
    const { expires: _old, ...rest } = d;
    const next: DeviceRecord = {
      ...rest,
      posture: to,
      reasons,
      lastSeen: at,
      ...(expires !== undefined && { expires }),
      ...(round !== undefined && { lastRound: round }),
    };
    this.save(next);
    this.armExpiry(next);
    const changed = d.posture !== to || d.reasons.join() !== reasons.join();
    if (changed) {
      const event: PostureEvent = {
        deviceId: d.id,
        at,
        from: d.posture,
        to,
        reasons,
        ...(round && { round }),
      };
      this.store.addPostureEvent(event);
      this.log.info({ device: d.id, from: d.posture, to, reasons, round }, 'posture changed');
      this.hooks.postureChanged(notice(next, at));
    }
    return next;
  }

  /** Republishes every device's posture, e.g. after a restart emptied the broker's retained store. */
  announceAll(now: number): void {
    for (const d of this.devices.values()) this.hooks.postureChanged(notice(d, now));
  }

  private armExpiry(d: DeviceRecord): void {
    const old = this.expiries.get(d.id);
    if (old) clearTimeout(old);
    this.expiries.delete(d.id);
    if ((d.posture !== 'affirming' && d.posture !== 'warning') || d.expires === undefined) return;
    const expires = d.expires;
    const timer = setTimeout(
      () => {
        this.expiries.delete(d.id);
        const now = this.devices.get(d.id);
        // Only the record this timer was armed for: a newer result re-armed its own.
        if (now && now.expires === expires && (now.posture === 'affirming' || now.posture === 'warning')) {
          this.transition(now, 'stale', ['stale'], Date.now());
        }
      },
      Math.max(0, expires + this.graceMs() - Date.now()),
    );
    timer.unref();
    this.expiries.set(d.id, timer);
  }

  close(): void {
    for (const t of this.expiries.values()) clearTimeout(t);
    this.expiries.clear();
  }
}

function notice(d: DeviceRecord, at: number): PostureNotice {
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
