// The CBOR data model vigil/1 uses (RFC 8949 subset): definite lengths only, no tags, map keys
// are text or integers. Integers outside the safe range decode as bigint so that no value is
// silently rounded.
export type CborValue =
  | number
  | bigint
  | string
  | boolean
  | null
  | Uint8Array
  | readonly CborValue[]
  | CborMap;

export type CborKey = string | number;
export type CborMap = ReadonlyMap<CborKey, CborValue>;

/** What the encoder accepts: plain objects become text-keyed maps, `undefined` members are left out. */
export type Encodable =
  | number
  | bigint
  | string
  | boolean
  | null
  | Uint8Array
  | readonly Encodable[]
  | ReadonlyMap<CborKey, Encodable>
  | { readonly [key: string]: Encodable | undefined };
