import type { Logger } from 'pino';
import type { Connections } from '../connections/registry.ts';
import type { RuntimePolicy } from '../policy/runtime-policy.ts';
import type { Fleet } from '../posture/fleet.ts';
import type { CommitNotice, DeviceConflict, SharedStore } from '../store/postgres.ts';
import type { ControlBus } from './bus.ts';
import { resolveConflict } from './ownership.ts';

// Every gateway keeps the whole fleet's records in memory (the API, selectors and admission read
// them); the store is where they meet. After each commit a gateway names the devices it wrote,
// and the others read those rows again. A device write refused as a conflict (another gateway
// wrote first) is resolved by ownership.ts's rule and written again when there is something to
// keep. After the bus was away, everything is read again.

export interface FleetSyncDeps {
  readonly me: string;
  readonly store: SharedStore;
  readonly bus: ControlBus;
  readonly fleet: Fleet;
  readonly connections: Connections;
  /** Rebuilds the runtime policy (the allowlist or the releases changed). */
  readonly refreshPolicy: () => Promise<void>;
  readonly policy: () => RuntimePolicy;
  readonly log: Logger;
}

export class FleetSync {
  constructor(private readonly deps: FleetSyncDeps) {
    deps.bus.on('devices', (m) => {
      if (m.from !== deps.me) this.reload(m.ids);
    });
    deps.bus.on('policy', (m) => {
      if (m.from !== deps.me) this.policyChanged();
    });
  }

  /** The store committed: tell the others what to read again. */
  committed(c: CommitNotice): void {
    const { bus, me } = this.deps;
    if (c.devices.length > 0) void bus.toFleet({ t: 'devices', from: me, ids: c.devices });
    if (c.tables.has('allowlist') || c.tables.has('releases')) void bus.toFleet({ t: 'policy', from: me });
  }

  /** Reads these devices again into the fleet (or every device, after the bus was away). */
  reload(ids: readonly string[] | 'all'): void {
    this.deps.store
      .reloadDevices(ids, (records) => this.deps.fleet.load(records))
      .catch((err: Error) => this.deps.log.warn({ err: err.message }, 'reading devices again failed'));
  }

  /** Resolves device writes the store refused because another gateway wrote first. */
  conflicts(conflicts: readonly DeviceConflict[]): void {
    const { store, fleet, connections, log } = this.deps;
    const byId = new Map(conflicts.map((c) => [c.id, c]));
    store
      .reloadDevices([...byId.keys()], (records) => {
        for (const stored of records) {
          const c = byId.get(stored.id)!;
          const owned = connections.attestedOf(stored.id) !== undefined;
          const again = resolveConflict(stored, c.refused, c.baseLabels, owned);
          fleet.load([stored]);
          if (again) {
            fleet.save(again);
            if (owned) for (const e of c.events) store.addPostureEvent(e);
          }
          log.info(
            { device: stored.id, owned, rewritten: again !== undefined, events: c.events.length },
            'another gateway wrote the device first; its record and ours were merged',
          );
          // Live views heard of what this gateway decided: they hear what stands now.
          fleet.announce(stored.id);
        }
      })
      .catch((err: Error) => log.warn({ err: err.message }, 'reading conflicting devices failed'));
  }

  /**
   * The allowlist or the releases changed elsewhere. Under an allowlist, revoking is the
   * operator saying "no longer this device": its connections here end too, as on the gateway
   * where it was revoked.
   */
  policyChanged(): void {
    const { refreshPolicy, policy, connections, log } = this.deps;
    refreshPolicy().then(
      () => {
        const admission = policy().admission;
        if (admission.mode !== 'allowlist') return;
        const revoked = [...connections.all()].filter(
          (c) => c.hello !== undefined && !admission.isAllowlisted(c.hello.ekHash),
        );
        for (const c of revoked) c.link.disconnect();
        if (revoked.length > 0)
          log.info({ disconnected: revoked.map((c) => c.deviceId) }, 'admission revoked on another gateway');
      },
      (err: Error) => log.error({ err: err.message }, 'policy refresh failed; the previous policy stays'),
    );
  }
}
