import type { Random } from '../../shared/clock.ts';
import type { Challenge, RoundReason } from '../../shared/protocol/index.ts';
import { makeCredential, objectName, toHex } from '../../shared/tpm/index.ts';
import type { ActiveRound, HelloContext } from '../connections/device-connection.ts';
import type { DeviceRecord } from '../model.ts';

// What a round asks for, decided from what the gateway knows of the device: the PCRs (policy's
// plus the device's software PCR), the log entries it has not replayed yet, and whether the AK
// still has to be activated (onboarding is this very round with `activate` added). Pure apart
// from the randomness and the connection's exporter, both passed in.

export interface RoundPlanInput {
  readonly reason: RoundReason;
  readonly batchId?: string;
  /** The round's id when it was chosen beforehand (a round asked of the fleet); else random. */
  readonly id?: string;
  readonly hello: HelloContext;
  readonly device: DeviceRecord;
  /** The policy's PCRs. */
  readonly pcrs: readonly number[];
  readonly deadlineMs: number;
  readonly now: number;
  readonly random: Random;
  /** B of this connection for a nonce. */
  readonly exporter: (nonce: Uint8Array) => Uint8Array;
}

export function planRound(i: RoundPlanInput): { readonly round: ActiveRound; readonly challenge: Challenge } {
  const nonce = i.random(32);
  const pcrs = [...new Set([...i.pcrs, i.hello.hello.swPcr])].sort((a, b) => a - b);
  const akName = objectName(i.hello.hello.ak);
  const enrolled = i.device.ak !== undefined && Buffer.compare(i.device.ak.name, akName) === 0;
  const secret = enrolled ? undefined : i.random(32);
  const activate = secret && makeCredential(i.hello.ek, akName, secret);
  // The first round of a connection replays the whole software log: a new connection may follow
  // a reboot, after which the agent's log restarts. Later rounds fetch only what is new.
  const fromScratch =
    i.reason === 'onboard' || i.device.swLog === undefined || i.device.reasons.includes('log-mismatch');
  const logs = { sw: fromScratch ? 0 : i.device.swLog!.count };
  const round: ActiveRound = {
    id: i.id ?? toHex(i.random(16)),
    nonce,
    exporter: i.exporter(nonce),
    pcrs,
    logs,
    reason: i.reason,
    ...(i.batchId && { batchId: i.batchId }),
    issuedAt: i.now,
    deadlineAt: i.now + i.deadlineMs,
    ...(secret && { activation: secret }),
    akPublicArea: i.hello.hello.ak,
  };
  const challenge: Challenge = {
    t: 'challenge',
    round: Buffer.from(round.id, 'hex'),
    nonce,
    reason: i.reason,
    pcrs,
    logs,
    ...(activate && { activate: { blob: activate.blob, secret: activate.secret } }),
    deadline: i.deadlineMs,
  };
  return { round, challenge };
}
