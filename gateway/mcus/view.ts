import type { McuResultCode } from '../../shared/mcu/codes.ts';
import { mcuSubmodule } from '../../shared/mcu/submodule.ts';
import type { RoundRecord } from '../model.ts';
import type { McuAdmission, McuFailureScope } from './model.ts';

// The JSON the operator API gives of MCU sub-attesters (null for an absent value, as every view).

/** One MCU of a device as its newest appraised round left it. */
export interface McuView {
  readonly slot: string;
  /** Its name among the EAR's submodules. */
  readonly submodule: string;
  readonly status: 'affirming' | 'contraindicated';
  readonly code: McuResultCode | null;
  readonly detail: string | null;
  readonly identity: string | null;
  readonly model: string | null;
  readonly firmware: string | null;
  /** Whether a failure of this MCU contraindicates the whole device, under the policy then in force. */
  readonly onFailure: McuFailureScope;
  readonly round: string;
  readonly appraisedAt: number | null;
}

export interface McuAdmissionView {
  readonly identity: string;
  readonly device: string | null;
  readonly note: string | null;
  readonly admittedAt: number;
}

/**
 * A device's MCUs from the newest appraised round among `rounds` (newest first). A round whose
 * own appraisal failed appraised no MCU: then there is none to show, rather than older news.
 */
export function mcuViews(deviceId: string, rounds: readonly RoundRecord[]): McuView[] {
  const round = rounds.find((r) => r.state === 'appraised');
  return (round?.mcus ?? []).map((m) => ({
    slot: m.slot,
    submodule: mcuSubmodule(deviceId, m.slot),
    status: m.status,
    code: m.code ?? null,
    detail: m.detail ?? null,
    identity: m.identity ?? null,
    model: m.model ?? null,
    firmware: m.firmware ?? null,
    onFailure: m.onFailure,
    round: round!.id,
    appraisedAt: round!.appraisedAt ?? null,
  }));
}

export function mcuAdmissionView(a: McuAdmission): McuAdmissionView {
  return { identity: a.identity, device: a.device ?? null, note: a.note ?? null, admittedAt: a.admittedAt };
}
