import { CborError, decodeCbor } from '../cbor/decode.ts';
import { encodeCbor } from '../cbor/encode.ts';
import type { CborValue, Encodable } from '../cbor/value.ts';
import { STATUSES, type Status } from './codes.ts';
import { malformed } from './errors.ts';
import { Fields } from './fields.ts';

// The EAR (draft-ietf-rats-ear) a `result` carries, as its claims set: the CBOR serialization
// with integer keys, signed as a CWT (an untagged COSE_Sign1, shared/cose) by the gateway, and
// the same claims in the JSON serialization, which the operator API signs as a JWT for tools
// that want JSON. One model, two serializations, so the two can never say different things.

/** The profile of the EAR drafts that Veraison's libraries (go-ear, rust-ear) verify. */
export const EAR_PROFILE = 'tag:github.com,2023:veraison/ear';

/** AR4SI trustworthiness claims with their CBOR labels (draft-ietf-rats-ar4si, EAR §3). */
export const TRUST_CLAIMS = [
  'instance-identity',
  'configuration',
  'executables',
  'file-system',
  'hardware',
  'runtime-opaque',
  'storage-opaque',
  'sourced-data',
] as const;
export type TrustClaim = (typeof TRUST_CLAIMS)[number];
/** A claim absent from the vector was not made (AR4SI: absent means "no claim"). */
export type TrustVector = Readonly<Partial<Record<TrustClaim, number>>>;

/** EAR status as a trust tier code point. */
const TIER: Record<Status, number> = { none: 0, affirming: 2, warning: 32, contraindicated: 96 };
const TIER_STATUS = new Map(STATUSES.map((s) => [TIER[s], s] as const));

// Labels: EAT (RFC 9711) and CWT (RFC 8392) claims, then EAR's own.
const L = {
  exp: 4,
  iat: 6,
  nonce: 10,
  profile: 265,
  submods: 266,
  status: 1000,
  trust: 1001,
  policy: 1003,
  verifier: 1004,
  developer: 0,
  build: 1,
} as const;
/** Our own claim in a submodule: the result codes behind a status (text label, as EAR allows). */
const CODES = 'vigil.codes';

export interface EarAppraisal {
  readonly status: Status;
  readonly trust: TrustVector;
  readonly policyId: string;
  /** Result codes, on failure. */
  readonly codes?: readonly string[];
}

export interface Ear {
  readonly profile: string;
  /** Seconds (CWT/JWT NumericDate). */
  readonly iat: number;
  readonly exp?: number;
  /** The round's nonce. */
  readonly nonce: Uint8Array;
  readonly verifier: { readonly developer: string; readonly build: string };
  /** One appraisal per attester: the device by its id, and any sub-attester it carries. */
  readonly submods: Readonly<Record<string, EarAppraisal>>;
}

function trustMap(v: TrustVector): Map<number, number> {
  const m = new Map<number, number>();
  TRUST_CLAIMS.forEach((claim, label) => {
    const value = v[claim];
    if (value !== undefined && value !== 0) m.set(label, value);
  });
  return m;
}

/** The CBOR serialization (integer keys), the payload of the CWT. */
export function encodeEar(e: Ear): Uint8Array {
  const submods = new Map<string, Encodable>();
  for (const [id, a] of Object.entries(e.submods)) {
    const m = new Map<number | string, Encodable>([
      [L.status, TIER[a.status]],
      [L.trust, trustMap(a.trust)],
      [L.policy, a.policyId],
    ]);
    if (a.codes && a.codes.length > 0) m.set(CODES, [...a.codes]);
    submods.set(id, m);
  }
  const claims = new Map<number, Encodable>([
    [L.profile, e.profile],
    [L.iat, e.iat],
    ...(e.exp !== undefined ? [[L.exp, e.exp] as [number, Encodable]] : []),
    [L.nonce, e.nonce],
    [
      L.verifier,
      new Map<number, string>([
        [L.developer, e.verifier.developer],
        [L.build, e.verifier.build],
      ]),
    ],
    [L.submods, submods],
  ]);
  return encodeCbor(claims);
}

/** Decodes the CBOR serialization; any defect is `malformed` with the claim named. */
export function decodeEar(bytes: Uint8Array): Ear {
  let v: CborValue;
  try {
    v = decodeCbor(bytes, { maxDepth: 8 });
  } catch (e) {
    if (e instanceof CborError) throw malformed(`ear: ${e.message}`);
    throw e;
  }
  const f = Fields.of(v, 'ear');
  const verifier = f.fields(L.verifier);
  const submodsRaw = f.raw(L.submods);
  if (!(submodsRaw instanceof Map)) throw malformed('ear.submods: expected a map of appraisals');
  const submods: Record<string, EarAppraisal> = {};
  for (const [id, value] of submodsRaw) {
    if (typeof id !== 'string') throw malformed('ear.submods: keys must be text');
    const a = Fields.of(value, `ear.submods.${id}`);
    const tier = a.uint(L.status);
    const status = TIER_STATUS.get(tier);
    if (status === undefined) throw malformed(`ear.submods.${id}.ear.status: ${tier} is not a trust tier`);
    const trustRaw = a.raw(L.trust);
    if (!(trustRaw instanceof Map))
      throw malformed(`ear.submods.${id}.ear.trustworthiness-vector: expected a map`);
    const trust: Partial<Record<TrustClaim, number>> = {};
    for (const [label, value] of trustRaw) {
      const claim = typeof label === 'number' ? TRUST_CLAIMS[label] : undefined;
      if (
        claim === undefined ||
        typeof value !== 'number' ||
        !Number.isInteger(value) ||
        value < -128 ||
        value > 127
      )
        throw malformed(
          `ear.submods.${id}.ear.trustworthiness-vector: ${String(label)} => ${String(value)} is not a claim`,
        );
      trust[claim] = value;
    }
    const codes = a.has(CODES)
      ? a.arrayOf(CODES, 'a result code', (c) => (typeof c === 'string' ? c : undefined))
      : undefined;
    submods[id] = { status, trust, policyId: a.text(L.policy, 256), ...(codes && { codes }) };
  }
  return {
    profile: f.text(L.profile, 256),
    iat: f.uint(L.iat),
    ...(f.has(L.exp) && { exp: f.uint(L.exp) }),
    nonce: f.bytes(L.nonce),
    verifier: { developer: verifier.text(L.developer, 256), build: verifier.text(L.build, 256) },
    submods,
  };
}

/** The JSON serialization (text keys, base64url nonce), the payload of the JWT. */
export function earToJson(e: Ear): Record<string, unknown> {
  const submods: Record<string, unknown> = {};
  for (const [id, a] of Object.entries(e.submods)) {
    submods[id] = {
      'ear.status': a.status,
      'ear.trustworthiness-vector': Object.fromEntries(Object.entries(a.trust).filter(([, v]) => v !== 0)),
      'ear.appraisal-policy-id': a.policyId,
      ...(a.codes && a.codes.length > 0 && { [CODES]: a.codes }),
    };
  }
  return {
    eat_profile: e.profile,
    iat: e.iat,
    ...(e.exp !== undefined && { exp: e.exp }),
    eat_nonce: Buffer.from(e.nonce).toString('base64url'),
    'ear.verifier-id': { developer: e.verifier.developer, build: e.verifier.build },
    submods,
  };
}
