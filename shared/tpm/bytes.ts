import { TpmFormatError } from './errors.ts';

/**
 * Big-endian cursor over TPM wire bytes. Every read is bounds-checked and names the structure
 * being read, so a short buffer reports which field was cut off rather than a RangeError.
 */
export class Reader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  readonly structure: string;
  #offset = 0;

  constructor(bytes: Uint8Array, structure = 'buffer') {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.structure = structure;
  }

  get offset(): number {
    return this.#offset;
  }

  get remaining(): number {
    return this.#bytes.length - this.#offset;
  }

  #take(n: number, field: string): number {
    if (this.remaining < n) {
      throw new TpmFormatError(
        this.structure,
        field,
        `needs ${n} bytes at offset ${this.#offset}, only ${this.remaining} left`,
      );
    }
    const at = this.#offset;
    this.#offset += n;
    return at;
  }

  u8(field = 'u8'): number {
    return this.#view.getUint8(this.#take(1, field));
  }

  u16(field = 'u16'): number {
    return this.#view.getUint16(this.#take(2, field));
  }

  u32(field = 'u32'): number {
    return this.#view.getUint32(this.#take(4, field));
  }

  u64(field = 'u64'): bigint {
    return this.#view.getBigUint64(this.#take(8, field));
  }

  /** A copy (a plain Uint8Array even when reading a Buffer), so callers may keep it after the buffer is reused. */
  bytes(n: number, field = 'bytes'): Uint8Array {
    const at = this.#take(n, field);
    return new Uint8Array(this.#bytes.subarray(at, at + n));
  }

  /** A TPM2B: u16 size then that many bytes; returns the contents. */
  tpm2b(field = 'tpm2b', max = 0xffff): Uint8Array {
    const size = this.u16(`${field}.size`);
    if (size > max)
      throw new TpmFormatError(this.structure, field, `size ${size} exceeds the maximum ${max}`);
    return this.bytes(size, field);
  }

  /** Reads a TPM2B and hands its contents to `parse` as a nested structure that must be consumed whole. */
  sized<T>(field: string, parse: (inner: Reader) => T): T {
    const inner = new Reader(this.tpm2b(field), `${this.structure}.${field}`);
    const value = parse(inner);
    inner.end();
    return value;
  }

  /** Throws when bytes remain: a structure with trailing bytes is not the structure it claims to be. */
  end(): void {
    if (this.remaining !== 0) {
      throw new TpmFormatError(
        this.structure,
        'end',
        `${this.remaining} trailing bytes after offset ${this.#offset}`,
        'trailing',
      );
    }
  }
}

/** Big-endian builder for TPM wire bytes; values out of range throw RangeError (a programming error). */
export class Writer {
  #chunks: Uint8Array[] = [];
  #length = 0;

  get length(): number {
    return this.#length;
  }

  #fixed(size: number, set: (view: DataView) => void): this {
    const chunk = new Uint8Array(size);
    set(new DataView(chunk.buffer));
    return this.bytes(chunk);
  }

  u8(value: number): this {
    checkRange(value, 0xff, 'u8');
    return this.#fixed(1, (v) => v.setUint8(0, value));
  }

  u16(value: number): this {
    checkRange(value, 0xffff, 'u16');
    return this.#fixed(2, (v) => v.setUint16(0, value));
  }

  u32(value: number): this {
    checkRange(value, 0xffffffff, 'u32');
    return this.#fixed(4, (v) => v.setUint32(0, value));
  }

  u64(value: bigint): this {
    if (value < 0n || value > 0xffffffffffffffffn) throw new RangeError(`u64 out of range: ${value}`);
    return this.#fixed(8, (v) => v.setBigUint64(0, value));
  }

  bytes(value: Uint8Array): this {
    this.#chunks.push(value);
    this.#length += value.length;
    return this;
  }

  tpm2b(value: Uint8Array): this {
    if (value.length > 0xffff) throw new RangeError(`TPM2B of ${value.length} bytes exceeds 65535`);
    return this.u16(value.length).bytes(value);
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.#length);
    let at = 0;
    for (const chunk of this.#chunks) {
      out.set(chunk, at);
      at += chunk.length;
    }
    return out;
  }
}

function checkRange(value: number, max: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > max)
    throw new RangeError(`${what} out of range: ${value}`);
}

/** u16 size || contents: how a TPM2B travels when the caller holds only its contents. */
export function tpm2b(contents: Uint8Array): Uint8Array {
  return new Writer().tpm2b(contents).finish();
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const w = new Writer();
  for (const p of parts) w.bytes(p);
  return w.finish();
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

export function fromHex(hex: string): Uint8Array {
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(hex)) throw new RangeError(`not an even-length hex string: ${hex}`);
  return new Uint8Array(Buffer.from(hex, 'hex'));
}
