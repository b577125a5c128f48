import type { Clock, Timer } from '../../shared/clock.ts';
import type { RoundRecord } from '../model.ts';
import type { Fleet } from '../posture/fleet.ts';
import type { StoreWriter } from '../store/store.ts';

/**
 * Rounds a previous run left pending: their connections are gone, but each keeps its deadline. A
 * device that has not re-attested by then turns stale; one that did makes the round abandoned.
 * Returns a function that cancels what has not fired yet (gateway shutdown).
 */
export function recoverPendingRounds(
  pending: readonly RoundRecord[],
  fleet: Fleet,
  store: StoreWriter,
  clock: Clock,
  settled?: (round: RoundRecord) => void,
): () => void {
  const timers = new Set<Timer>();
  for (const round of pending) {
    const timer = clock.after(round.deadlineAt - clock.now(), () => {
      timers.delete(timer);
      const device = fleet.get(round.deviceId);
      const renewed =
        device !== undefined && device.lastRound !== round.id && device.lastSeen > round.issuedAt;
      const record: RoundRecord = {
        ...round,
        state: renewed ? 'abandoned' : 'stale',
        codes: renewed ? [] : ['stale'],
        detail: renewed
          ? 'the gateway restarted; the device re-attested on a new connection'
          : 'the gateway restarted and the device did not answer before the deadline',
      };
      store.saveRound(record);
      settled?.(record);
      if (!renewed && device) fleet.apply(device, { kind: 'unanswered-after-restart' }, round.id);
    });
    timers.add(timer);
  }
  return () => {
    for (const t of timers) t.cancel();
    timers.clear();
  };
}
