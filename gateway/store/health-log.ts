import type { Logger } from 'pino';
import type { StoreHealth } from './store.ts';
import type { QueueEvent } from './write-queue.ts';

// What an operator reads in the log when the store cannot write, once per change rather than
// once per retry: when it starts (and what the gateway does meanwhile), when history starts being
// dropped, and when it writes again.

export function logStoreHealth(log: Logger, event: QueueEvent, health: StoreHealth): void {
  switch (event.kind) {
    case 'failing':
      log.error(
        { err: health.lastError?.message, queued: health.queued },
        'the store cannot write: devices are still appraised and answered, writes are queued and retried, new enrolments are refused until it can (GET /v1/health)',
      );
      return;
    case 'shedding':
      log.error(
        { queued: health.queued, dropped: health.dropped },
        'the store still cannot write and its queue is full: round history is being dropped, oldest routine rounds first; devices, AKs and posture are kept',
      );
      return;
    case 'recovered':
      log.warn(
        { committed: event.committed, failedForMs: event.failedForMs, dropped: health.dropped },
        'the store writes again: queued writes committed',
      );
      return;
  }
}
