import { Reader, Writer } from '../../shared/tpm/bytes.ts';
import { TPM_CC } from '../../shared/tpm/constants.ts';
import { type CommandRunner, EMPTY_PASSWORD } from './command.ts';
import { withEndorsementPolicy } from './session.ts';

/**
 * TPM2_ActivateCredential: recovers the credential that MakeCredential bound to the AK's Name and
 * encrypted to the EK. The AK authorises with its (empty) password, or the runner's bus session;
 * the EK, whose userWithAuth is clear, with a policy session satisfying PolicyA.
 */
export async function activateCredential(
  tpm: CommandRunner & { flush(handle: number): Promise<void> },
  akHandle: number,
  ekHandle: number,
  blob: Uint8Array,
  secret: Uint8Array,
): Promise<Uint8Array> {
  return withEndorsementPolicy(tpm, async (ekAuth) => {
    const res = await tpm.execute({
      code: TPM_CC.ActivateCredential,
      handles: [akHandle, ekHandle],
      auths: [EMPTY_PASSWORD, ekAuth],
      parameters: new Writer().tpm2b(blob).tpm2b(secret).finish(),
      // In the bus session the recovered credential comes back encrypted (it is what proves the AK
      // is in this TPM), and the credential blob goes encrypted too.
      session: { decrypt: true, encrypt: true },
    });
    const r = new Reader(res.parameters, 'TPM2_ActivateCredential response');
    const certInfo = r.tpm2b('certInfo');
    r.end();
    return certInfo;
  });
}
