import { createHash, type KeyObject } from 'node:crypto';
import { encodeCbor } from '../cbor/encode.ts';
import {
  algOf,
  COSE_ALG,
  CoseError,
  decodeSign1,
  type Sign1,
  signSign1,
  verifySign1,
} from '../cose/sign1.ts';
import { toHex } from '../tpm/bytes.ts';
import { decodeCborStrict, guard } from './envelope.ts';
import { ProtocolError } from './errors.ts';
import { Fields } from './fields.ts';
import { DIGEST_BYTES } from './messages.ts';
import { byteOrder } from './software-manifest.ts';

// The token of an `operate` command (PROTOCOL.md §6.2): the gateway's statement, signed ES256 with
// its EAR key, that it released operation `name` to swarm `swarm` of rollout `rollout` whose
// members (their SHA-256 in `members`) had all attested `digest`, to happen at `at`, valid until
// `exp`. A device hands it to the operation's handler; a third party (a PLC, an auditor) checks it
// with the gateway's EAR public key and learns that the barrier held, without asking the gateway.

export interface OperateClaims {
  readonly swarm: string;
  readonly rollout: string;
  /** The operation's name. */
  readonly name: string;
  /** The software manifest digest every member attested. */
  readonly digest: Uint8Array;
  /** SHA-256 of the sorted member ids joined by `\n` (membersDigest). */
  readonly members: Uint8Array;
  /** When the operation happens, Unix ms. */
  readonly at: number;
  /** After this the token proves nothing, Unix ms. */
  readonly exp: number;
}

export class OperateTokenError extends Error {
  override readonly name = 'OperateTokenError';
}

/** SHA-256 of the member ids sorted (by their bytes) and joined by `\n`, without a final newline. */
export function membersDigest(ids: readonly string[]): Uint8Array {
  const text = [...ids].sort(byteOrder).join('\n');
  return new Uint8Array(createHash('sha256').update(text, 'utf8').digest());
}

function readClaims(f: Fields): OperateClaims {
  return {
    swarm: f.text('swarm', 128),
    rollout: f.text('rollout', 128),
    name: f.text('name', 128),
    digest: f.bytes('digest', DIGEST_BYTES),
    members: f.bytes('members', DIGEST_BYTES),
    at: f.uint('at'),
    exp: f.uint('exp'),
  };
}

export function encodeOperateClaims(c: OperateClaims): Uint8Array {
  return encodeCbor({
    swarm: c.swarm,
    rollout: c.rollout,
    name: c.name,
    digest: c.digest,
    members: c.members,
    at: c.at,
    exp: c.exp,
  });
}

/** Signs the claims with the gateway's EAR key, which must be P-256 (ES256). */
export function signOperateToken(key: KeyObject, c: OperateClaims): Uint8Array {
  if (algOf(key) !== COSE_ALG.ES256)
    throw new OperateTokenError('an operate token is signed ES256 with the gateway EAR key (P-256)');
  return signSign1(key, encodeOperateClaims(c));
}

export interface OperateToken {
  readonly claims: OperateClaims;
  readonly sign1: Sign1;
}

/** Parses a token's form and claims; trusts nothing (see verifyOperateToken). */
export function decodeOperateToken(bytes: Uint8Array): OperateToken {
  let sign1: Sign1;
  try {
    sign1 = decodeSign1(bytes);
  } catch (e) {
    if (e instanceof CoseError) throw new OperateTokenError(`operate token: ${e.message}`);
    throw e;
  }
  if (sign1.alg !== COSE_ALG.ES256)
    throw new OperateTokenError(`operate token: alg ${sign1.alg}, expected -7 (ES256)`);
  try {
    const claims = guard(() => readClaims(Fields.of(decodeCborStrict(sign1.payload, 'token'), 'token')));
    return { claims, sign1 };
  } catch (e) {
    if (e instanceof ProtocolError) throw new OperateTokenError(`operate token: ${e.detail}`);
    throw e;
  }
}

/**
 * The claims of a token signed by `key` and not expired at `now`; an OperateTokenError saying
 * what is wrong otherwise.
 */
export function verifyOperateToken(bytes: Uint8Array, key: KeyObject, now: number): OperateClaims {
  const { claims, sign1 } = decodeOperateToken(bytes);
  if (!verifySign1(sign1, key))
    throw new OperateTokenError(
      `operate token: the signature does not verify with the key given (token kid ${toHex(sign1.kid)})`,
    );
  if (claims.exp <= now)
    throw new OperateTokenError(
      `operate token: expired at ${new Date(claims.exp).toISOString()} (checked at ${new Date(now).toISOString()})`,
    );
  return claims;
}
