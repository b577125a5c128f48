import { createHash } from 'node:crypto';
import { PCR_COUNT } from '../../../shared/protocol/index.ts';

// The SHA-256 PCR bank of a simulated TPM: 24 registers, zero at reset, changed only by extend.

export class PcrBank {
  readonly #values: Uint8Array[] = Array.from({ length: PCR_COUNT }, () => new Uint8Array(32));

  /** PCR[i] = SHA-256(PCR[i] || digest), as TPM2_PCR_Extend does. */
  extend(index: number, digest: Uint8Array): void {
    const old = this.#get(index);
    this.#values[index] = new Uint8Array(createHash('sha256').update(old).update(digest).digest());
  }

  read(index: number): Uint8Array {
    return this.#get(index);
  }

  /** The values of `pcrs`, in the given order, as TPM2_PCR_Read returns them. */
  readMany(pcrs: readonly number[]): Map<number, Uint8Array> {
    return new Map(pcrs.map((i) => [i, this.#get(i)]));
  }

  /** TPM2_Startup(CLEAR) after a reset: every register back to zero. */
  reset(): void {
    for (let i = 0; i < PCR_COUNT; i++) this.#values[i] = new Uint8Array(32);
  }

  #get(index: number): Uint8Array {
    const v = this.#values[index];
    if (v === undefined) throw new RangeError(`PCR ${index} does not exist (0 to ${PCR_COUNT - 1})`);
    return v;
  }
}
