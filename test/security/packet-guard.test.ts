import { PassThrough } from 'node:stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { guardPacketSize } from '../../gateway/broker/packet-guard.ts';

// The packet guard alone: fixed headers split across chunks, many packets per chunk, the bound.

const flush = () => new Promise((r) => setImmediate(r));

async function run(
  chunks: number[][],
  max: number,
): Promise<{ cut: number | undefined; destroyed: boolean }> {
  const s = new PassThrough();
  let cut: number | undefined;
  s.on('readable', () => {
    while (s.read() !== null);
  });
  guardPacketSize(
    s,
    () => max,
    (n) => {
      cut = n;
    },
  );
  for (const c of chunks) {
    if (s.destroyed) break;
    s.write(Buffer.from(c));
    await flush();
  }
  return { cut, destroyed: s.destroyed };
}

test('packets within the bound pass, in any chunking', async () => {
  // PINGREQ (0 bytes), a 3-byte packet, a 200-byte packet with its 2-byte length split apart.
  const big = [0x30, 0xc8, 0x01, ...new Array(200).fill(7)];
  const r = await run(
    [
      [0xc0, 0x00, 0x30, 0x03, 1, 2],
      [3, big[0]!, big[1]!],
      [big[2]!, ...big.slice(3)],
    ],
    200,
  );
  assert.equal(r, { cut: undefined, destroyed: false });
});

test('a packet announcing more than the bound cuts at its header', async () => {
  const r = await run(
    [
      [0xc0, 0x00],
      [0x30, 0x80],
      [0x80, 0x80, 0x20],
    ],
    1024,
  );
  assert.is(r.cut, 0x20 * 128 ** 3);
  assert.ok(r.destroyed);
});

test('a length field of five bytes is not MQTT: cut', async () => {
  const r = await run([[0x30, 0xff, 0xff, 0xff, 0xff, 0x7f]], 1 << 30);
  assert.ok(r.destroyed);
});

test.run();
