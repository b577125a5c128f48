// CRC-32 as zlib, Ethernet and most MCU CRC peripherals compute it (CRC-32/ISO-HDLC: polynomial
// 0x04C11DB7 reflected, initial value and final XOR 0xFFFFFFFF). Check value: "123456789" gives
// 0xCBF43926. Table-driven, since a frame is checked once per byte received.

const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
