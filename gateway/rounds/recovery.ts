import type { RoundRecord } from '../model.ts';
import type { Fleet } from '../posture/fleet.ts';
import type { PostureStore } from '../store/store.ts';

/**
 * Rounds a previous run left pending: their connections are gone, but each keeps its deadline. A
 * device that has not re-attested by then turns stale; one that did makes the round abandoned.
 * Returns a function that cancels what has not fired yet (gateway shutdown).
 */
export function recoverPendingRounds(
  pending: readonly RoundRecord[],
  fleet: Fleet,
  store: PostureStore,
): () => void {
  const timers = new Set<NodeJS.Timeout>();
  for (const round of pending) {
    const timer = setTimeout(
      () => {
        timers.delete(timer);
        const device = fleet.get(round.deviceId);
        const renewed =
          device !== undefined && device.lastRound !== round.id && device.lastSeen > round.issuedAt;
        store.saveRound({
          ...round,
          state: renewed ? 'abandoned' : 'stale',
          codes: renewed ? [] : ['stale'],
          detail: renewed
            ? 'the gateway restarted; the device re-attested on a new connection'
            : 'the gateway restarted and the device did not answer before the deadline',
        });
        if (!renewed && device && (device.posture === 'affirming' || device.posture === 'warning')) {
          fleet.transition(device, 'stale', ['stale'], Date.now(), undefined, round.id);
        }
      },
      Math.max(0, round.deadlineAt - Date.now()),
    );
    timer.unref();
    timers.add(timer);
  }
  return () => {
    for (const t of timers) clearTimeout(t);
    timers.clear();
  };
}
