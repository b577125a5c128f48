import { createPublicKey, type KeyObject } from 'node:crypto';
import { encodeCbor } from '../cbor/encode.ts';
import { CoseError, decodeSign1, keyId, type Sign1, signSign1, verifySign1 } from '../cose/sign1.ts';
import { equalBytes, toHex } from '../tpm/bytes.ts';
import type { ReportCode } from './codes.ts';
import { decodeCborStrict, guard } from './envelope.ts';
import { ProtocolError } from './errors.ts';
import { Fields } from './fields.ts';
import { DIGEST_BYTES, MAX_RELEASE_MANIFEST_BYTES } from './messages.ts';
import { isManifestToken } from './software-manifest.ts';

// The release manifest (PROTOCOL.md §6.1): what an operator's release key signs about one release
// of one piece of software. An untagged COSE_Sign1 (Ed25519 or ES256) whose payload is a CBOR map.
// The gateway checks it when a release is imported, the device when it is staged; both with this
// code, each against the keys it trusts.

export const ARTIFACT_FORMATS = ['tar'] as const;
export type ArtifactFormat = (typeof ARTIFACT_FORMATS)[number];

/** A health window longer than a day is a mistake, not a policy. */
export const MAX_HEALTH_WINDOW_MS = 24 * 60 * 60 * 1000;

export interface ReleaseArtifact {
  readonly size: number;
  /** SHA-256 of the artifact's bytes. */
  readonly sha256: Uint8Array;
  readonly format: ArtifactFormat;
}

export interface ReleaseManifest {
  /** The software, as the software manifest names it (one printable token). */
  readonly name: string;
  readonly version: string;
  /** Strictly increasing per name: the anti-rollback counter (Uptane, SUIT). */
  readonly seq: number;
  /** The software manifest digest of the tree once installed: what swPcr will be extended with. */
  readonly digest: Uint8Array;
  readonly artifact: ReleaseArtifact;
  /** Unix ms after which no device stages it. */
  readonly expires?: number;
  readonly health?: { readonly windowMs: number };
}

/** A release manifest whose signature verified, with what signed it. */
export interface SignedRelease {
  readonly manifest: ReleaseManifest;
  /** The COSE_Sign1 bytes as received (what is stored and served). */
  readonly bytes: Uint8Array;
  readonly kid: Uint8Array;
  readonly alg: Sign1['alg'];
}

/** A release refused, with the §6.3 code a device reports for it. */
export class ReleaseError extends Error {
  override readonly name = 'ReleaseError';
  constructor(
    readonly code: ReportCode,
    readonly detail: string,
  ) {
    super(`${code}: ${detail}`);
  }
}

function token(f: Fields, key: string): string {
  const v = f.text(key, 128);
  if (!isManifestToken(v))
    throw new ReleaseError(
      'manifest-invalid',
      `release manifest ${key} ${JSON.stringify(v)}: expected 1 to 128 printable ASCII characters, no spaces`,
    );
  return v;
}

function readManifest(f: Fields): ReleaseManifest {
  const artifact = f.fields('artifact');
  const health = f.optFields('health');
  const expires = f.optUint('expires');
  return {
    name: token(f, 'name'),
    version: token(f, 'version'),
    seq: f.uint('seq'),
    digest: f.bytes('digest', DIGEST_BYTES),
    artifact: {
      size: artifact.uint('size'),
      sha256: artifact.bytes('sha256', DIGEST_BYTES),
      format: artifact.oneOf('format', ARTIFACT_FORMATS),
    },
    ...(expires !== undefined && { expires }),
    ...(health && { health: { windowMs: health.uint('windowMs', 0, MAX_HEALTH_WINDOW_MS) } }),
  };
}

/** The payload's CBOR map, keys in the order of PROTOCOL.md §6.1. */
export function encodeReleasePayload(m: ReleaseManifest): Uint8Array {
  return encodeCbor({
    name: m.name,
    version: m.version,
    seq: m.seq,
    digest: m.digest,
    artifact: { size: m.artifact.size, sha256: m.artifact.sha256, format: m.artifact.format },
    expires: m.expires,
    health: m.health && { windowMs: m.health.windowMs },
  });
}

/** Parses a payload; every failure is `manifest-invalid` naming the key. */
export function decodeReleasePayload(bytes: Uint8Array): ReleaseManifest {
  try {
    return guard(() => readManifest(Fields.of(decodeCborStrict(bytes, 'release'), 'release')));
  } catch (e) {
    if (e instanceof ProtocolError) throw new ReleaseError('manifest-invalid', e.detail);
    throw e;
  }
}

/** Signs a release manifest with a release key (Ed25519 or P-256); kid = keyId of its public key. */
export function signRelease(key: KeyObject, m: ReleaseManifest): Uint8Array {
  // Decoding what we encode refuses, before signing, what no device would accept.
  const payload = encodeReleasePayload(m);
  decodeReleasePayload(payload);
  return signSign1(key, payload);
}

export interface TrustedKey {
  readonly kid: Uint8Array;
  readonly key: KeyObject;
}

/** A public release key as the checks below use it; refuses a key that cannot sign COSE here. */
export function trustedKey(key: KeyObject): TrustedKey {
  return { kid: keyId(key), key };
}

/**
 * A release public key from PEM (SPKI, as `vigil-gateway release keygen` prints it) or DER SPKI;
 * `source` names where it came from in the error when it is not an Ed25519 or P-256 public key.
 */
export function parseReleaseKey(key: string | Uint8Array, source: string): TrustedKey {
  let k: KeyObject;
  try {
    k =
      typeof key === 'string'
        ? createPublicKey(key)
        : createPublicKey({ key: Buffer.from(key), format: 'der', type: 'spki' });
  } catch (e) {
    throw new ReleaseKeyError(
      `${source}: not a public key (${(e as Error).message}); use the PEM printed by \`vigil-gateway release keygen\``,
    );
  }
  try {
    return trustedKey(k);
  } catch (e) {
    throw new ReleaseKeyError(`${source}: ${(e as Error).message}`);
  }
}

/** A release key that cannot be used, with where it came from. */
export class ReleaseKeyError extends Error {
  override readonly name = 'ReleaseKeyError';
}

/**
 * Checks a signed release manifest against the keys trusted here: `release-key-unknown` when its
 * kid names none of them, `manifest-invalid` when its form or its signature is wrong.
 */
export function openRelease(bytes: Uint8Array, trusted: readonly TrustedKey[]): SignedRelease {
  if (bytes.length > MAX_RELEASE_MANIFEST_BYTES)
    throw new ReleaseError(
      'manifest-invalid',
      `a release manifest of ${bytes.length} bytes is over the ${MAX_RELEASE_MANIFEST_BYTES} allowed`,
    );
  let msg: Sign1;
  try {
    msg = decodeSign1(bytes);
  } catch (e) {
    if (e instanceof CoseError) throw new ReleaseError('manifest-invalid', e.message);
    throw e;
  }
  const signer = trusted.find((t) => equalBytes(t.kid, msg.kid));
  if (signer === undefined)
    throw new ReleaseError(
      'release-key-unknown',
      `the release manifest is signed by key ${toHex(msg.kid)}, which is not among the ${trusted.length} release key(s) trusted here${trusted.length ? ` (${trusted.map((t) => toHex(t.kid)).join(', ')})` : ''}`,
    );
  if (!verifySign1(msg, signer.key))
    throw new ReleaseError(
      'manifest-invalid',
      `the release manifest's signature does not verify with release key ${toHex(msg.kid)}`,
    );
  return { manifest: decodeReleasePayload(msg.payload), bytes, kid: msg.kid, alg: msg.alg };
}

/** Refuses a manifest past its `expires` (at `now`, Unix ms). */
export function checkNotExpired(m: ReleaseManifest, now: number): void {
  if (m.expires !== undefined && m.expires <= now)
    throw new ReleaseError(
      'expired',
      `release ${m.name} ${m.version} (seq ${m.seq}) expired at ${new Date(m.expires).toISOString()}; sign a fresh manifest`,
    );
}
