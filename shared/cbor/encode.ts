import type { CborKey, Encodable } from './value.ts';

// Our own encoder rather than a general-purpose library: vigil/1 needs integers to stay integers
// (a Unix time in ms exceeds 2^32 and general encoders fall back to float64 there) and byte
// strings to stay untagged byte strings, with no surprise in between.

class Output {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  head(major: number, arg: number | bigint): void {
    const m = major << 5;
    if (typeof arg === 'bigint' || arg > 0xffffffff) {
      this.reserve(9);
      this.buf[this.length] = m | 27;
      this.view.setBigUint64(this.length + 1, BigInt(arg));
      this.length += 9;
    } else if (arg < 24) {
      this.reserve(1);
      this.buf[this.length++] = m | arg;
    } else if (arg < 0x100) {
      this.reserve(2);
      this.buf[this.length++] = m | 24;
      this.buf[this.length++] = arg;
    } else if (arg < 0x10000) {
      this.reserve(3);
      this.buf[this.length] = m | 25;
      this.view.setUint16(this.length + 1, arg);
      this.length += 3;
    } else {
      this.reserve(5);
      this.buf[this.length] = m | 26;
      this.view.setUint32(this.length + 1, arg);
      this.length += 5;
    }
  }

  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }

  /** A text string's head and UTF-8 bytes; ASCII (every key, most values) is copied as is. */
  text(s: string): void {
    const n = s.length;
    if (n < 64) {
      let ascii = true;
      for (let i = 0; i < n; i++) {
        if (s.charCodeAt(i) > 0x7f) {
          ascii = false;
          break;
        }
      }
      if (ascii) {
        this.head(3, n);
        this.reserve(n);
        for (let i = 0; i < n; i++) this.buf[this.length + i] = s.charCodeAt(i);
        this.length += n;
        return;
      }
    }
    const b = utf8.encode(s);
    this.head(3, b.length);
    this.bytes(b);
  }

  float(x: number): void {
    this.reserve(9);
    this.buf[this.length] = 0xfb;
    this.view.setFloat64(this.length + 1, x);
    this.length += 9;
  }

  result(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

const utf8 = new TextEncoder();
const MAX_U64 = (1n << 64n) - 1n;

function integer(out: Output, n: number | bigint): void {
  // Safe integers (every one vigil/1 sends but a TPM clock) need no bigint.
  if (typeof n === 'number' && Number.isSafeInteger(n)) {
    if (n >= 0) out.head(0, n);
    else out.head(1, -1 - n);
    return;
  }
  const big = BigInt(n);
  if (big >= 0n) {
    if (big > MAX_U64) throw new RangeError(`CBOR cannot encode ${big}: above 2^64-1`);
    out.head(0, typeof n === 'number' ? n : big);
  } else {
    const arg = -1n - big;
    if (arg > MAX_U64) throw new RangeError(`CBOR cannot encode ${big}: below -2^64`);
    out.head(1, arg <= 0xffffffffn ? Number(arg) : arg);
  }
}

function key(out: Output, k: CborKey): void {
  if (typeof k === 'number') integer(out, k);
  else text(out, k);
}

function text(out: Output, s: string): void {
  out.text(s);
}

function item(out: Output, v: Encodable): void {
  if (typeof v === 'number') {
    if (Number.isSafeInteger(v)) integer(out, v);
    else out.float(v);
  } else if (typeof v === 'bigint') integer(out, v);
  else if (typeof v === 'string') text(out, v);
  else if (typeof v === 'boolean') out.head(7, v ? 21 : 20);
  else if (v === null) out.head(7, 22);
  else if (v instanceof Uint8Array) {
    out.head(2, v.length);
    out.bytes(v);
  } else if (Array.isArray(v)) {
    out.head(4, v.length);
    for (const x of v as readonly Encodable[]) item(out, x);
  } else if (v instanceof Map) {
    out.head(5, v.size);
    for (const [k, x] of v as ReadonlyMap<CborKey, Encodable>) {
      key(out, k);
      item(out, x);
    }
  } else {
    const entries = Object.entries(v as { [key: string]: Encodable | undefined }).filter(
      (e): e is [string, Encodable] => e[1] !== undefined,
    );
    out.head(5, entries.length);
    for (const [k, x] of entries) {
      text(out, k);
      item(out, x);
    }
  }
}

/** Encodes one value with definite lengths and shortest-form integer heads (RFC 8949 §4.2.1). */
export function encodeCbor(value: Encodable): Uint8Array {
  const out = new Output();
  item(out, value);
  return out.result();
}
