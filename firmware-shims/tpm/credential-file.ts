import { Reader, Writer } from '../../shared/tpm/bytes.ts';
import type { MadeCredential } from '../../shared/tpm/credential.ts';
import { TpmFormatError } from '../../shared/tpm/errors.ts';

// tpm2_makecredential -o / tpm2_activatecredential -i: 0xBADCC0DE | u32 version 1 | TPM2B_ID_OBJECT | TPM2B_ENCRYPTED_SECRET.
const MAGIC = 0xbadcc0de;
const VERSION = 1;

export function encodeCredentialFile(c: MadeCredential): Uint8Array {
  return new Writer().u32(MAGIC).u32(VERSION).tpm2b(c.blob).tpm2b(c.secret).finish();
}

export function parseCredentialFile(bytes: Uint8Array): MadeCredential {
  const r = new Reader(bytes, 'tpm2-tools credential file');
  const magic = r.u32('magic');
  if (magic !== MAGIC)
    throw new TpmFormatError(
      r.structure,
      'magic',
      `expected 0xbadcc0de, got 0x${magic.toString(16)}`,
      'magic',
    );
  const version = r.u32('version');
  if (version !== VERSION) throw new TpmFormatError(r.structure, 'version', `expected 1, got ${version}`);
  const blob = r.tpm2b('credentialBlob');
  const secret = r.tpm2b('secret');
  r.end();
  return { blob, secret };
}
