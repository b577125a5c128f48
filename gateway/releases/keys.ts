import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { keyId } from '../../shared/cose/sign1.ts';
import { parseReleaseKey, type TrustedKey } from '../../shared/protocol/release-manifest.ts';

// Release keys on the gateway side. The private key signs in the build pipeline (`release pack`),
// never on the gateway; the gateway trusts the public keys in DIR/release-keys/*.pem. A folder
// rather than a list in gateway.json: adding a key is copying a file (config management does that
// well), and a key is trusted only by someone who can write into the gateway directory, never
// through the operator API.

export const RELEASE_KEYS_DIR = 'release-keys';

export type ReleaseKeyAlg = 'ed25519' | 'es256';

export interface GeneratedKey {
  readonly privateKey: KeyObject;
  /** PKCS#8 PEM. */
  readonly privatePem: string;
  /** SPKI PEM: what gateways and devices pin. */
  readonly publicPem: string;
  readonly kid: Uint8Array;
}

export function generateReleaseKey(alg: ReleaseKeyAlg): GeneratedKey {
  const { privateKey, publicKey } =
    alg === 'ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    privateKey,
    privatePem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    kid: keyId(publicKey),
  };
}

/** A public key file (SPKI PEM; a private key PEM gives its public half). */
export function readReleaseKey(file: string): TrustedKey {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return parseReleaseKey(pem, file);
}

/** Every `*.pem` in DIR/release-keys/, sorted by file name; none when the folder is absent. */
export function loadReleaseKeys(gatewayDir: string): { keys: TrustedKey[]; folder: string } {
  const folder = join(gatewayDir, RELEASE_KEYS_DIR);
  let names: string[];
  try {
    names = readdirSync(folder).filter((n) => n.endsWith('.pem'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { keys: [], folder };
    throw e;
  }
  return { keys: names.sort().map((n) => readReleaseKey(join(folder, n))), folder };
}
