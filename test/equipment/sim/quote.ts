import { createHash, sign } from 'node:crypto';
import {
  marshalSignature,
  TPM_GENERATED_VALUE,
  TPM_ST,
  Writer,
  writePcrSelection,
} from '../../../shared/tpm/index.ts';
import type { SimKeys } from './keys.ts';
import type { PcrBank } from './pcr-bank.ts';

// TPM2_Quote in software: the same TPMS_ATTEST and TPMT_SIGNATURE bytes a TPM returns (Part 2
// §10.12, §11.3), signed with the software AK. A verifier parses and checks them exactly as it
// does a TPM's; only the absent EK certificate and `attester: 'sim'` tell them apart.

/** TPMS_CLOCK_INFO: the simulated TPM's clock. */
export interface SimClock {
  /** Milliseconds the TPM has been powered, over its life. */
  clock(): bigint;
  resetCount: number;
  restartCount: number;
}

/** A plausible firmware version (TPM_PT_FIRMWARE_VERSION_1 || _2). */
export const SIM_FIRMWARE_VERSION = 0x0000_0007_0055_0000n;

export interface SimQuote {
  /** TPMS_ATTEST (contents of TPM2B_ATTEST). */
  readonly attest: Uint8Array;
  /** TPMT_SIGNATURE. */
  readonly signature: Uint8Array;
}

export function simQuote(
  keys: SimKeys,
  bank: PcrBank,
  clock: SimClock,
  qualifyingData: Uint8Array,
  pcrs: readonly number[],
): SimQuote {
  const digest = createHash('sha256');
  for (const i of pcrs) digest.update(bank.read(i));
  const w = new Writer()
    .u32(TPM_GENERATED_VALUE)
    .u16(TPM_ST.ATTEST_QUOTE)
    .tpm2b(keys.akQualifiedName)
    .tpm2b(qualifyingData)
    .u64(clock.clock())
    .u32(clock.resetCount)
    .u32(clock.restartCount)
    .u8(1)
    .u64(SIM_FIRMWARE_VERSION);
  writePcrSelection(w, [{ hash: 'sha256', pcrs: [...pcrs] }]);
  const attest = w.tpm2b(new Uint8Array(digest.digest())).finish();
  // The TPM signs the SHA-256 of the attestation; node:crypto hashes it for us.
  const p1363 = sign('sha256', attest, { key: keys.ak.privateKey, dsaEncoding: 'ieee-p1363' });
  const signature = marshalSignature({
    type: 'ecdsa',
    hash: 'sha256',
    r: new Uint8Array(p1363.subarray(0, 32)),
    s: new Uint8Array(p1363.subarray(32, 64)),
  });
  return { attest, signature };
}
