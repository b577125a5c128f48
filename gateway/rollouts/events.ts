import type { RoundRecord } from '../model.ts';
import type { RolloutEvent } from './machine.ts';
import type { ForwardedReport } from './peers.ts';

// The machine's events from what the gateway saw: a round settled (here, or read back from the
// store for a member held elsewhere) and a member's report (taken here, or forwarded by the
// gateway holding its connection). One reading for each, wherever it came from.

/** A settled round; `measured` is the digest of the release's name in the device's log, hex. */
export function roundEvent(record: RoundRecord, measured: string | undefined): RolloutEvent {
  return {
    kind: 'round',
    member: record.deviceId,
    issuedAt: record.issuedAt,
    reason: record.reason,
    answered: record.state === 'appraised',
    affirming: record.state === 'appraised' && record.status === 'affirming',
    ...(measured !== undefined && { measured }),
    ...(record.codes[0] !== undefined && { code: record.codes[0] }),
  };
}

export function reportEvent(r: ForwardedReport): RolloutEvent {
  return {
    kind: 'report',
    member: r.device,
    command: r.command,
    state: r.state,
    ...(r.code !== undefined && { code: r.code }),
    ...(r.detail !== undefined && { detail: r.detail }),
  };
}
