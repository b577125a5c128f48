import type { McuAdmission, McuFailureScope } from '../mcus/model.ts';
import type { McuPolicySettings } from '../mcus/policy.ts';
import { type McuReferences, McuReferenceValues } from './mcu.ts';

const NONE: readonly string[] = Object.freeze([]);

/**
 * The `mcus` policy as the gateway applies it: the operator's settings joined with the MCU
 * admissions in the store, precomputed when either changes so that a round only does lookups.
 */
export class McuPolicy {
  readonly refs: McuReferences;
  private readonly defaultScope: McuFailureScope;
  private readonly slotScopes: ReadonlyMap<string, McuFailureScope>;
  private readonly modelScopes: ReadonlyMap<string, McuFailureScope>;
  private readonly expect: McuPolicySettings['expect'];

  constructor(settings: McuPolicySettings, admissions: readonly McuAdmission[]) {
    this.refs = new McuReferenceValues(admissions, settings.firmware);
    this.defaultScope = settings.onFailure;
    this.slotScopes = new Map(Object.entries(settings.slots).map(([k, v]) => [k, v.onFailure]));
    this.modelScopes = new Map(Object.entries(settings.models).map(([k, v]) => [k, v.onFailure]));
    this.expect = settings.expect;
  }

  /** The slots a device with these labels must report, sorted; usually none. */
  expectedSlots(labels: Readonly<Record<string, string>>): readonly string[] {
    if (this.expect.length === 0) return NONE;
    const slots = new Set<string>();
    for (const e of this.expect) {
      if (Object.entries(e.labels).every(([k, v]) => Object.hasOwn(labels, k) && labels[k] === v)) {
        for (const s of e.slots) slots.add(s);
      }
    }
    return [...slots].sort();
  }

  /**
   * What a failure of the MCU in `slot` does to its device: the slot's setting, else its model's
   * (when the appraisal got far enough to read it), else the default.
   */
  scope(slot: string, model?: string): McuFailureScope {
    return (
      this.slotScopes.get(slot) ??
      (model === undefined ? undefined : this.modelScopes.get(model)) ??
      this.defaultScope
    );
  }
}
