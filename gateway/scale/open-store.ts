import type { Logger } from 'pino';
import type { GatewayConfig } from '../config.ts';
import { logStoreHealth } from '../store/health-log.ts';
import {
  type CommitNotice,
  type DeviceConflict,
  PostgresStore,
  type SharedStore,
} from '../store/postgres.ts';
import { SqliteStore } from '../store/sqlite.ts';
import type { Store, StoreHealth } from '../store/store.ts';
import type { QueueEvent } from '../store/write-queue.ts';

// The store gateway.json names: SQLite (a file, one gateway: the default) or PostgreSQL (shared
// by several gateways). The scale-out layer is built after the store, so what it hears from the
// store (commits, conflicts) goes through hooks it fills in later.

export interface StoreHooks {
  commit?: (c: CommitNotice) => void;
  conflict?: (c: readonly DeviceConflict[]) => void;
}

export interface OpenedStore {
  readonly store: Store;
  /** Set for PostgreSQL: what several gateways share. */
  readonly shared?: SharedStore;
  readonly hooks: StoreHooks;
}

export async function openStore(
  config: GatewayConfig,
  log: Logger,
  /** Who hears of refused writes (default: the log); a command collects them to report. */
  onWriteError: (err: Error) => void = (err) => log.error({ err: err.message }, 'the store refused a write'),
): Promise<OpenedStore> {
  const onHealthChange = (event: QueueEvent, health: StoreHealth) => logStoreHealth(log, event, health);
  const hooks: StoreHooks = {};
  if (config.scale.engine === 'sqlite')
    return { store: new SqliteStore(config.database, { onWriteError, onHealthChange }), hooks };
  const shared = await PostgresStore.open({
    url: config.database,
    gatewayId: config.scale.gatewayId,
    onWriteError,
    onCommit: (c) => hooks.commit?.(c),
    onConflict: (c) => hooks.conflict?.(c),
  });
  return { store: shared, shared, hooks };
}
