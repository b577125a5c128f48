// Consistent Overhead Byte Stuffing (Cheshire and Baker, 1999): rewrites a block so that it
// holds no zero byte, at a cost of one byte per 254 plus one. The zero byte is then free to
// delimit frames on the line, so a receiver resynchronises at the very next zero whatever noise
// came before it.

/** The largest size `cobsEncode` gives for `n` bytes. */
export function cobsEncodedBound(n: number): number {
  return n + 1 + Math.floor(n / 254);
}

export function cobsEncode(data: Uint8Array): Uint8Array {
  // One spare byte: a block that fills up on the last input byte opens no new block, and the
  // final code is then written past the end of what is returned.
  const out = new Uint8Array(cobsEncodedBound(data.length) + 1);
  let codeAt = 0;
  let code = 1;
  let o = 1;
  for (let i = 0; i < data.length; i++) {
    const b = data[i]!;
    if (b !== 0) {
      out[o++] = b;
      code++;
    }
    if (b === 0 || code === 0xff) {
      out[codeAt] = code;
      code = 1;
      codeAt = o;
      if (b === 0 || i < data.length - 1) o++;
    }
  }
  out[codeAt] = code;
  return out.subarray(0, o);
}

/**
 * Decodes one block (without its delimiter). Returns a string saying what is wrong when the
 * block is not valid COBS: a zero inside it, or a code that points past its end.
 */
export function cobsDecode(block: Uint8Array): Uint8Array | string {
  const out = new Uint8Array(block.length);
  let o = 0;
  let i = 0;
  while (i < block.length) {
    const code = block[i]!;
    if (code === 0) return `a zero byte at offset ${i} inside a COBS block`;
    const end = i + code;
    if (end > block.length) {
      return `COBS code ${code} at offset ${i} points past the end of the ${block.length}-byte block`;
    }
    for (let j = i + 1; j < end; j++) {
      const b = block[j]!;
      if (b === 0) return `a zero byte at offset ${j} inside a COBS block`;
      out[o++] = b;
    }
    i = end;
    // A group shorter than 254 data bytes stands for its data then a zero, except the last one.
    if (code !== 0xff && i < block.length) out[o++] = 0;
  }
  return out.subarray(0, o);
}
