import type { CborKey, CborMap, CborValue } from './value.ts';

/** Thrown for any input that is not one well-formed item of the vigil/1 CBOR subset. */
export class CborError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`${message} at byte ${offset}`);
    this.name = 'CborError';
  }
}

export interface CborLimits {
  /** Nesting depth allowed; the outermost item is depth 1. */
  readonly maxDepth: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A short text of ASCII bytes (valid UTF-8 as it is), without a decoder call; else undefined. */
function asciiText(buf: Uint8Array, from: number, to: number): string | undefined {
  let s = '';
  for (let i = from; i < to; i++) {
    const c = buf[i]!;
    if (c > 0x7f) return undefined;
    s += String.fromCharCode(c);
  }
  return s;
}
const MAJOR_NAMES = ['uint', 'negative int', 'bstr', 'text', 'array', 'map', 'tag', 'simple/float'];

// A strict decoder written for the protocol rather than borrowed: it rejects what vigil/1 does
// not use (tags, indefinite lengths, duplicate keys, non-text/int keys, undefined, invalid UTF-8)
// instead of interpreting it, and it never recurses deeper than the configured limit, so a
// hostile payload cannot exhaust the stack.
class Parser {
  private readonly view: DataView;
  pos = 0;

  constructor(
    private readonly buf: Uint8Array,
    private readonly limits: CborLimits,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  private fail(message: string, at = this.pos): never {
    throw new CborError(message, at);
  }

  private need(n: number): void {
    if (this.pos + n > this.buf.length) this.fail(`truncated: ${n} more byte(s) needed`);
  }

  /** Reads an argument; returns a number when it is exact, else a bigint. */
  private argument(info: number, start: number): number | bigint {
    if (info < 24) return info;
    switch (info) {
      case 24:
        this.need(1);
        return this.buf[this.pos++]!;
      case 25:
        this.need(2);
        this.pos += 2;
        return this.view.getUint16(this.pos - 2);
      case 26:
        this.need(4);
        this.pos += 4;
        return this.view.getUint32(this.pos - 4);
      case 27: {
        this.need(8);
        this.pos += 8;
        // A Unix time in ms is here every message: exact as a number without a bigint.
        const hi = this.view.getUint32(this.pos - 8);
        if (hi < 0x200000) return hi * 0x1_0000_0000 + this.view.getUint32(this.pos - 4);
        const big = this.view.getBigUint64(this.pos - 8);
        return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
      }
      case 31:
        return this.fail('indefinite-length items are not used by vigil/1', start);
      default:
        return this.fail(`reserved additional information ${info}`, start);
    }
  }

  private length(arg: number | bigint, what: string, start: number): number {
    if (typeof arg === 'bigint' || arg > this.buf.length - this.pos) {
      this.fail(`${what} length ${arg} exceeds the ${this.buf.length - this.pos} byte(s) left`, start);
    }
    return arg;
  }

  item(depth: number): CborValue {
    if (depth > this.limits.maxDepth) this.fail(`nesting deeper than ${this.limits.maxDepth} levels`);
    const start = this.pos;
    this.need(1);
    const initial = this.buf[this.pos++]!;
    const major = initial >> 5;
    const info = initial & 0x1f;
    if (major === 7) return this.simple(info, start);
    const arg = this.argument(info, start);
    switch (major) {
      case 0:
        return arg;
      case 1:
        return typeof arg === 'number' && arg < Number.MAX_SAFE_INTEGER ? -1 - arg : -1n - BigInt(arg);
      case 2: {
        const n = this.length(arg, 'bstr', start);
        this.pos += n;
        return this.buf.subarray(this.pos - n, this.pos);
      }
      case 3: {
        const n = this.length(arg, 'text', start);
        this.pos += n;
        const ascii = n < 64 ? asciiText(this.buf, this.pos - n, this.pos) : undefined;
        if (ascii !== undefined) return ascii;
        try {
          return utf8.decode(this.buf.subarray(this.pos - n, this.pos));
        } catch {
          return this.fail('text is not valid UTF-8', start);
        }
      }
      case 4: {
        // Every element takes at least one byte, so the count is bounded by what is left.
        const n = this.length(arg, 'array', start);
        const out: CborValue[] = new Array(n);
        for (let i = 0; i < n; i++) out[i] = this.item(depth + 1);
        return out;
      }
      case 5: {
        const n = this.length(arg, 'map', start);
        const out = new Map<CborKey, CborValue>();
        for (let i = 0; i < n; i++) {
          const keyAt = this.pos;
          const k = this.item(depth + 1);
          if (typeof k !== 'string' && typeof k !== 'number') {
            this.fail('map keys must be text or integers', keyAt);
          }
          if (out.has(k)) this.fail(`duplicate map key ${JSON.stringify(k)}`, keyAt);
          out.set(k, this.item(depth + 1));
        }
        return out as CborMap;
      }
      default:
        return this.fail(`${MAJOR_NAMES[major]} (tag ${arg}) is not used by vigil/1`, start);
    }
  }

  private simple(info: number, start: number): CborValue {
    switch (info) {
      case 20:
        return false;
      case 21:
        return true;
      case 22:
        return null;
      case 25:
        this.need(2);
        this.pos += 2;
        return halfToNumber(this.view.getUint16(this.pos - 2));
      case 26:
        this.need(4);
        this.pos += 4;
        return this.view.getFloat32(this.pos - 4);
      case 27:
        this.need(8);
        this.pos += 8;
        return this.view.getFloat64(this.pos - 8);
      default:
        return this.fail(`simple value ${info} is not used by vigil/1`, start);
    }
  }
}

function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Decodes exactly one item that fills `bytes`; trailing bytes are an error. */
export function decodeCbor(bytes: Uint8Array, limits: CborLimits = { maxDepth: 16 }): CborValue {
  const p = new Parser(bytes, limits);
  const value = p.item(1);
  if (p.pos !== bytes.length) throw new CborError(`${bytes.length - p.pos} trailing byte(s)`, p.pos);
  return value;
}
