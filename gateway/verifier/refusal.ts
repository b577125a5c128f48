import type { TrustVector } from './trust-vector.ts';

// A check that fails throws a Refusal: the code the device is told (or the MCU's submodule shows),
// a detail for the operator, and the trustworthiness claim the failure settles. The device's
// appraisal stages (stages.ts) and an MCU's appraisal (mcu.ts) refuse alike, each with its codes.

export class Refusal<Code extends string = string> {
  constructor(
    readonly code: Code,
    readonly detail: string,
    readonly claim?: keyof TrustVector,
    readonly value?: number,
  ) {}

  /** The contraindicated outcome, with the claim this refusal settles written into `trust`. */
  outcome(trust: TrustVector) {
    if (this.claim !== undefined && this.value !== undefined) trust[this.claim] = this.value;
    return {
      ok: false as const,
      status: 'contraindicated' as const,
      code: this.code,
      detail: this.detail,
      trust,
    };
  }
}

export type Refuse<Code extends string> = (
  code: Code,
  detail: string,
  claim?: keyof TrustVector,
  value?: number,
) => never;

/** A refuse function held to one set of codes (declare it with its type: it never returns). */
export function refuser<Code extends string>(): Refuse<Code> {
  return (code, detail, claim, value) => {
    throw new Refusal(code, detail, claim, value);
  };
}
