import {
  MCU_RESULT_CODES,
  type McuClaims,
  type McuResultCode,
  mcuSubmodule,
} from '../../shared/mcu/index.ts';
import type { EarAppraisal } from '../../shared/protocol/ear.ts';
import type { McuRoundResult } from '../mcus/model.ts';
import { appraiseMcus, type McuAppraisal } from './mcu.ts';
import type { McuPolicy } from './mcu-policy.ts';

// A round's MCU sub-attesters, after the device's own appraisal passed (docs/protocol.md §8):
// each MCU appraised on its own, each its own EAR submodule `{deviceId}/{slot}`, and, where the
// policy says a failing MCU is the device's failure, the one code that makes the whole device
// contraindicated. Pure, like the rest of the verifier.

export interface McuRoundOutcome {
  /** Per slot, in slot order: what the round record keeps and the device view shows. */
  readonly results: readonly McuRoundResult[];
  /** The MCUs' EAR submodules, by name. */
  readonly submods: Readonly<Record<string, EarAppraisal>>;
  /** Set when a failing MCU makes the whole device contraindicated under the policy. */
  readonly deviceFailure?: { readonly code: McuResultCode; readonly detail: string };
}

/** A device that carries no MCU and is expected to carry none: the common case, allocation-free. */
export const NO_MCUS: McuRoundOutcome = Object.freeze({ results: [], submods: {} });

const ORDER = new Map(MCU_RESULT_CODES.map((c, i) => [c, i]));

export interface McuRoundInput {
  readonly claims: McuClaims | undefined;
  readonly nonce: Uint8Array;
  readonly deviceId: string;
  readonly labels: Readonly<Record<string, string>>;
}

function result(slot: string, a: McuAppraisal, policy: McuPolicy): McuRoundResult {
  const facts = {
    ...(a.identity !== undefined && { identity: a.identity }),
    ...(a.model !== undefined && { model: a.model }),
    ...(a.firmware !== undefined && { firmware: a.firmware }),
  };
  const onFailure = policy.scope(slot, a.model);
  return a.ok
    ? { slot, status: a.status, ...facts, onFailure }
    : { slot, status: a.status, code: a.code, detail: a.detail, ...facts, onFailure };
}

export function appraiseRoundMcus(
  input: McuRoundInput,
  policy: McuPolicy,
  policyId: string,
): McuRoundOutcome {
  const expected = policy.expectedSlots(input.labels);
  if (input.claims === undefined && expected.length === 0) return NO_MCUS;
  const appraisals = appraiseMcus(input.claims, input, policy.refs, expected);
  const results: McuRoundResult[] = [];
  const submods: Record<string, EarAppraisal> = {};
  for (const [slot, a] of appraisals) {
    results.push(result(slot, a, policy));
    submods[mcuSubmodule(input.deviceId, slot)] = {
      status: a.status,
      trust: a.trust,
      policyId,
      ...(!a.ok && { codes: [a.code] }),
    };
  }
  // The first failure in appraisal order decides the device's code, as for the device's own
  // checks; the detail names every MCU that counts against the device.
  const failing = results
    .filter(
      (r): r is McuRoundResult & { code: McuResultCode } => r.code !== undefined && r.onFailure === 'device',
    )
    .sort((a, b) => ORDER.get(a.code)! - ORDER.get(b.code)!);
  const first = failing[0];
  if (first === undefined) return { results, submods };
  const detail = failing.map((r) => `MCU ${r.slot}: ${r.code} (${r.detail})`).join('; ');
  return { results, submods, deviceFailure: { code: first.code, detail } };
}
