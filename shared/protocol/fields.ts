import type { CborKey, CborMap, CborValue } from '../cbor/value.ts';
import { malformed } from './errors.ts';

/** Names what a value is, for error details: "bstr of 31 bytes", "text", "uint 7", ... */
export function describe(v: CborValue | undefined): string {
  if (v === undefined) return 'nothing (the key is missing)';
  if (v === null) return 'null';
  if (typeof v === 'boolean') return `bool ${v}`;
  if (typeof v === 'string') return `text of ${v.length} character(s)`;
  if (typeof v === 'bigint') return `integer ${v}`;
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) return `float ${v}`;
    return v < 0 ? `negative integer ${v}` : `uint ${v}`;
  }
  if (v instanceof Uint8Array) return `bstr of ${v.length} byte(s)`;
  if (Array.isArray(v)) return `array of ${v.length}`;
  return 'map';
}

function isMap(v: CborValue | undefined): v is CborMap {
  return v instanceof Map;
}

function isUint(v: CborValue | undefined): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Typed, strict access to one CBOR map of a message. Every failure is `malformed` with a detail
 * that names the key path, what was expected and what came.
 */
export class Fields {
  private constructor(
    private readonly map: CborMap,
    readonly path: string,
  ) {}

  static of(value: CborValue, path: string): Fields {
    if (!isMap(value)) throw malformed(`${path}: expected a map, got ${describe(value)}`);
    return new Fields(value, path);
  }

  private at(key: CborKey): string {
    return `${this.path}.${key}`;
  }

  private wrong(key: CborKey, expected: string, got: CborValue | undefined): never {
    throw malformed(`${this.at(key)}: expected ${expected}, got ${describe(got)}`);
  }

  has(key: CborKey): boolean {
    return this.map.has(key);
  }

  raw(key: CborKey): CborValue | undefined {
    return this.map.get(key);
  }

  bytes(key: CborKey, length?: number): Uint8Array {
    const v = this.map.get(key);
    const expected = length === undefined ? 'a non-empty bstr' : `bstr of ${length} bytes`;
    if (!(v instanceof Uint8Array)) this.wrong(key, expected, v);
    if (length === undefined ? v.length === 0 : v.length !== length) this.wrong(key, expected, v);
    return v;
  }

  optBytes(key: CborKey, length?: number): Uint8Array | undefined {
    return this.map.has(key) ? this.bytes(key, length) : undefined;
  }

  uint(key: CborKey, min = 0, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.map.get(key);
    const expected = max === Number.MAX_SAFE_INTEGER && min === 0 ? 'uint' : `uint from ${min} to ${max}`;
    if (!isUint(v) || v < min || v > max) this.wrong(key, expected, v);
    return v;
  }

  optUint(key: CborKey): number | undefined {
    return this.map.has(key) ? this.uint(key) : undefined;
  }

  text(key: CborKey, maxLength = 1024): string {
    const v = this.map.get(key);
    if (typeof v !== 'string' || v.length > maxLength) this.wrong(key, `text of at most ${maxLength}`, v);
    return v;
  }

  bool(key: CborKey): boolean {
    const v = this.map.get(key);
    if (typeof v !== 'boolean') this.wrong(key, 'bool', v);
    return v;
  }

  oneOf<T extends string>(key: CborKey, allowed: readonly T[]): T {
    const v = this.map.get(key);
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
      const got = typeof v === 'string' ? `"${v.slice(0, 40)}"` : describe(v);
      throw malformed(`${this.at(key)}: expected one of ${allowed.join(', ')}, got ${got}`);
    }
    return v as T;
  }

  fields(key: CborKey): Fields {
    const v = this.map.get(key);
    if (!isMap(v)) this.wrong(key, 'a map', v);
    return new Fields(v, this.at(key));
  }

  optFields(key: CborKey): Fields | undefined {
    return this.map.has(key) ? this.fields(key) : undefined;
  }

  array(key: CborKey): readonly CborValue[] {
    const v = this.map.get(key);
    if (!Array.isArray(v)) this.wrong(key, 'an array', v);
    return v as readonly CborValue[];
  }

  /** Each element checked by `check`, which returns the element typed or undefined if wrong. */
  arrayOf<E>(key: CborKey, expected: string, check: (v: CborValue, path: string) => E | undefined): E[] {
    return this.array(key).map((v, i) => {
      const path = `${this.at(key)}[${i}]`;
      const e = check(v, path);
      if (e === undefined) throw malformed(`${path}: expected ${expected}, got ${describe(v)}`);
      return e;
    });
  }

  /** Iterates the map's own entries, for maps keyed by data (PCR indices, log names). */
  entries(): IterableIterator<[CborKey, CborValue]> {
    return this.map.entries();
  }
}
