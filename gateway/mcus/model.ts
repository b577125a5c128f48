import type { McuResultCode } from '../../shared/mcu/codes.ts';

// The gateway's records about MCU sub-attesters (docs/protocol.md §8), shared by the verifier,
// the store and the operator API.

/** An operator's admission of one MCU identity, stored like the EK allowlist. */
export interface McuAdmission {
  /** Lowercase hex SHA-256 of the MCU's raw identity public key. */
  readonly identity: string;
  /**
   * The one device that may carry this MCU; absent: any device. Binding an MCU to its device
   * refuses its evidence relayed through another device's agent (docs/serial.md §10).
   */
  readonly device?: string;
  readonly note?: string;
  readonly admittedAt: number;
}

/** What a round's appraisal concluded about one MCU: what the round record keeps. */
export interface McuRoundResult {
  readonly slot: string;
  readonly status: 'affirming' | 'contraindicated';
  /** The failing check's code and what it found; only on failure. */
  readonly code?: McuResultCode;
  readonly detail?: string;
  /** What the appraisal learnt of the MCU, as far as it got. */
  readonly identity?: string;
  readonly model?: string;
  readonly firmware?: string;
  /** Whether a failure here made the whole device contraindicated (the policy in force). */
  readonly onFailure: McuFailureScope;
}

export const MCU_FAILURE_SCOPES = ['submodule', 'device'] as const;
/** `submodule`: a failing MCU contraindicates only its own submodule; `device`: the whole device. */
export type McuFailureScope = (typeof MCU_FAILURE_SCOPES)[number];
