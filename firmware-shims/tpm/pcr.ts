import { Reader, Writer } from '../../shared/tpm/bytes.ts';
import { HASH_ALG, HASH_SIZE, type HashName, TPM_CC } from '../../shared/tpm/constants.ts';
import { parsePcrSelection, writePcrSelection } from '../../shared/tpm/pcr-selection.ts';
import { type CommandRunner, EMPTY_PASSWORD } from './command.ts';

/**
 * Reads `pcrs` of one bank. TPM2_PCR_Read returns at most 8 digests and says which it returned,
 * so this asks again for the rest until all are read.
 */
export async function pcrRead(
  tpm: CommandRunner,
  pcrs: readonly number[],
  hash: HashName = 'sha256',
): Promise<Map<number, Uint8Array>> {
  const wanted = [...new Set(pcrs)].sort((a, b) => a - b);
  const values = new Map<number, Uint8Array>();
  let remaining = wanted;
  while (remaining.length > 0) {
    const w = new Writer();
    writePcrSelection(w, [{ hash, pcrs: remaining }]);
    // No authorisation: the bus session joins as an audit session, so the values are HMAC-checked.
    const res = await tpm.execute({ code: TPM_CC.PCR_Read, parameters: w.finish(), session: {} });
    const r = new Reader(res.parameters, 'TPM2_PCR_Read response');
    r.u32('pcrUpdateCounter');
    const got = parsePcrSelection(r).flatMap((bank) => (bank.hash === hash ? bank.pcrs : []));
    const count = r.u32('pcrValues.count');
    if (count !== got.length)
      throw new Error(`TPM2_PCR_Read: selection names ${got.length} PCRs but ${count} digests came back`);
    for (const pcr of got) values.set(pcr, r.tpm2b('pcrValues.digest', HASH_SIZE[hash]));
    r.end();
    if (got.length === 0) {
      throw new Error(
        `TPM2_PCR_Read returned nothing for ${hash} PCRs ${remaining.join(',')}: the bank is not active or the PCRs do not exist (see pcrBanks())`,
      );
    }
    remaining = remaining.filter((p) => !values.has(p));
  }
  return values;
}

/** Extends one bank of `pcr` with `digest`. PCRs 0-15 are extendable from locality 0 with empty auth. */
export async function pcrExtend(
  tpm: CommandRunner,
  pcr: number,
  digest: Uint8Array,
  hash: HashName = 'sha256',
): Promise<void> {
  if (digest.length !== HASH_SIZE[hash]) {
    throw new RangeError(`a ${hash} digest is ${HASH_SIZE[hash]} bytes, got ${digest.length}`);
  }
  const parameters = new Writer().u32(1).u16(HASH_ALG[hash]).bytes(digest).finish();
  // In the bus session, a success the TPM did not give (the extend dropped on the bus) fails the HMAC.
  await tpm.execute({
    code: TPM_CC.PCR_Extend,
    handles: [pcr],
    auths: [EMPTY_PASSWORD],
    parameters,
    session: {},
  });
}
