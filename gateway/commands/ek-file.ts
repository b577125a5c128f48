import { existsSync, readFileSync } from 'node:fs';
import { deviceIdentity, isDeviceId, isEkHash } from '../../shared/protocol/index.ts';
import { parsePublic, TpmFormatError } from '../../shared/tpm/index.ts';
import { UsageError } from './args.ts';

// What `admit --ek` accepts: an EK hash (64 hex digits) or a device id (24), typed or in a file
// (what `vigil-agent init` prints), or the EK public key as tpm2-tools writes it:
// `tpm2_createek -u ek.pub` gives a TPM2B_PUBLIC (a 2-byte size, then the TPMT_PUBLIC); a bare
// TPMT_PUBLIC is accepted too. The hash is SHA-256 of the TPMT_PUBLIC (PROTOCOL.md §3), the same
// computation the gateway makes from hello.ek.

export function ekEntry(arg: string): string {
  const typed = arg.trim().toLowerCase();
  if (isEkHash(typed) || isDeviceId(typed)) return typed;
  if (!existsSync(arg))
    throw new UsageError(
      `--ek ${JSON.stringify(arg)}: neither an EK hash (64 hex digits), a device id (24) nor a file`,
    );
  const bytes = new Uint8Array(readFileSync(arg));
  const text = Buffer.from(bytes).toString('utf8').trim().toLowerCase();
  if (isEkHash(text) || isDeviceId(text)) return text;
  if (text.startsWith('-----begin'))
    throw new UsageError(
      `${arg} is PEM: give the ek.pub that \`tpm2_createek -u ek.pub\` writes (TPM2B_PUBLIC), or the EK hash the agent prints`,
    );
  const sized = bytes.length >= 2 && ((bytes[0]! << 8) | bytes[1]!) === bytes.length - 2;
  const area = sized ? bytes.subarray(2) : bytes;
  try {
    parsePublic(area);
  } catch (e) {
    if (!(e instanceof TpmFormatError)) throw e;
    throw new UsageError(`${arg}: not a TPM2B_PUBLIC or TPMT_PUBLIC EK public key (${e.message})`);
  }
  return deviceIdentity(area).ekHash;
}
