import { crc32 as zlibCrc32 } from 'node:zlib';
import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cobsDecode, cobsEncode } from '../../shared/mcu/cobs.ts';
import { crc32 } from '../../shared/mcu/crc32.ts';
import {
  encodeFrame,
  FRAME_ERROR_CODES,
  FrameDecoder,
  type FrameEvent,
  MAX_FRAME_PAYLOAD,
} from '../../shared/mcu/frame.ts';

const it = suite('MCU framing: COBS, CRC-32, resynchronisation');
const SEED = 0x5eed_0301;
const hex = (s: string) => new Uint8Array(Buffer.from(s.replace(/\s/g, ''), 'hex'));
const range = (from: number, to: number) => Uint8Array.from({ length: to - from + 1 }, (_, i) => from + i);
const cat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));
const codes = (events: FrameEvent[]) => events.map((e) => (e.ok ? 'frame' : e.error.code));

it('CRC-32 is CRC-32/ISO-HDLC: the check value, and zlib agrees on random data', () => {
  assert.is(crc32(new TextEncoder().encode('123456789')), 0xcbf43926);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), (b) => crc32(b) === zlibCrc32(b)),
    { seed: SEED, numRuns: 200 },
  );
});

it('COBS matches the published examples (Cheshire and Baker; the Wikipedia table)', () => {
  const vectors: [Uint8Array, Uint8Array][] = [
    [hex('00'), hex('0101')],
    [hex('0000'), hex('010101')],
    [hex('00 11 00'), hex('01 02 11 01')],
    [hex('11 22 00 33'), hex('03 11 22 02 33')],
    [hex('11 22 33 44'), hex('05 11 22 33 44')],
    [hex('11 00 00 00'), hex('02 11 01 01 01')],
    [range(1, 0xfe), cat(hex('ff'), range(1, 0xfe))],
    [range(0, 0xfe), cat(hex('01 ff'), range(1, 0xfe))],
    [range(1, 0xff), cat(hex('ff'), range(1, 0xfe), hex('02 ff'))],
    [cat(range(2, 0xff), hex('00')), cat(hex('ff'), range(2, 0xff), hex('01 01'))],
    [cat(range(3, 0xff), hex('00 01')), cat(hex('fe'), range(3, 0xff), hex('02 01'))],
  ];
  for (const [plain, stuffed] of vectors) {
    assert.equal(cobsEncode(plain), stuffed, `encode ${Buffer.from(plain).toString('hex').slice(0, 16)}…`);
    assert.equal(cobsDecode(stuffed), plain, `decode ${Buffer.from(stuffed).toString('hex').slice(0, 16)}…`);
  }
});

it('COBS round-trips any block and never emits a zero', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 1100 }), (b) => {
      const stuffed = cobsEncode(b);
      assert.not.ok(stuffed.includes(0));
      assert.equal(cobsDecode(stuffed), b);
    }),
    { seed: SEED, numRuns: 300 },
  );
});

it('a frame is 0x00, COBS(payload || CRC-32 LE), 0x00', () => {
  const frame = encodeFrame(hex('a1'));
  assert.is(frame[0], 0);
  assert.is(frame[frame.length - 1], 0);
  const body = cobsDecode(frame.subarray(1, -1));
  assert.ok(body instanceof Uint8Array);
  assert.is(body[0], 0xa1);
  assert.is(new DataView(body.buffer, body.byteOffset).getUint32(1, true), crc32(hex('a1')));
});

it('frames come out whole whatever the chunking, back to back', () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { minLength: 1, maxLength: 5 }),
      fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 20 }),
      (payloads, cuts) => {
        const stream = cat(...payloads.map((p) => encodeFrame(p)));
        const decoder = new FrameDecoder();
        const events: FrameEvent[] = [];
        let at = 0;
        for (let i = 0; at < stream.length; i++) {
          const n = cuts[i % cuts.length]!;
          events.push(...decoder.push(stream.subarray(at, at + n)));
          at += n;
        }
        assert.equal(
          events.map((e) => (e.ok ? Buffer.from(e.payload).toString('hex') : e.error.code)),
          payloads.map((p) => Buffer.from(p).toString('hex')),
        );
        assert.is(decoder.pending, 0);
      },
    ),
    { seed: SEED, numRuns: 200 },
  );
});

it('after noise, a truncated frame or a flipped bit the next frame still decodes', () => {
  const good = encodeFrame(hex('cafe'));
  const decoder = new FrameDecoder();
  const rejectedThenFrame = (events: FrameEvent[]) => events.length === 2 && !events[0]!.ok && events[1]!.ok;
  // Noise without delimiter, then a frame: its leading 0x00 closes the noise.
  assert.ok(rejectedThenFrame(decoder.push(cat(hex('1234567890'), good))), 'noise');
  assert.ok(rejectedThenFrame(decoder.push(cat(hex('0202020202'), good))), 'noise that is valid COBS');
  // A frame cut short (an MCU reset mid-answer), then a frame.
  assert.ok(rejectedThenFrame(decoder.push(cat(good.subarray(0, 4), good))), 'truncated');
  // A bit flipped on the line.
  const flipped = good.slice();
  flipped[2]! ^= 0x10;
  assert.equal(codes(decoder.push(cat(flipped, good))), ['frame-crc-mismatch', 'frame']);
  // Too short to hold a CRC; and invalid COBS (a code pointing past the end).
  assert.equal(codes(decoder.push(hex('00 03 11 22 00'))), ['frame-too-short']);
  assert.equal(codes(decoder.push(hex('00 09 11 22 33 44 55 00'))), ['frame-cobs-invalid']);
});

it('a frame over the maximum is reported once and skipped; the next one decodes', () => {
  const decoder = new FrameDecoder();
  const big = new Uint8Array(MAX_FRAME_PAYLOAD + 1).fill(7);
  assert.throws(() => encodeFrame(big), /exceeds the maximum of 1024/);
  assert.throws(() => encodeFrame(new Uint8Array(0)), /at least one payload byte/);
  const oversized = encodeFrame(big, MAX_FRAME_PAYLOAD + 1);
  const events = decoder.push(cat(oversized, encodeFrame(hex('01'))));
  assert.equal(codes(events), ['frame-too-large', 'frame']);
  assert.match((events[0] as { error: Error }).error.message, /at most 1024 payload bytes/);
  // A stream that never delimits costs a counter, not memory, and is reported when it ends.
  for (let i = 0; i < 64; i++) decoder.push(new Uint8Array(16 * 1024).fill(0x55));
  assert.is(decoder.pending, 64 * 16 * 1024);
  assert.equal(codes(decoder.push(hex('00'))), ['frame-too-large']);
});

it('the largest frame passes; a smaller configured maximum is enforced', () => {
  const max = new Uint8Array(MAX_FRAME_PAYLOAD).fill(0);
  assert.equal(codes(new FrameDecoder().push(encodeFrame(max))), ['frame']);
  assert.equal(codes(new FrameDecoder(64).push(encodeFrame(new Uint8Array(65).fill(1)))), [
    'frame-too-large',
  ]);
});

it('fuzz: any byte stream gives only frames and typed frame errors; a frame after it decodes', () => {
  const known = new Set<string>(FRAME_ERROR_CODES);
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 3000 }),
      fc.uint8Array({ minLength: 1, maxLength: 200 }),
      (noise, payload) => {
        const decoder = new FrameDecoder();
        const events = decoder.push(cat(noise, encodeFrame(payload)));
        for (const e of events.slice(0, -1)) {
          if (!e.ok) assert.ok(known.has(e.error.code), e.error.code);
        }
        const last = events.at(-1);
        assert.ok(last?.ok, 'the frame after the noise decodes');
        assert.equal(last.payload, payload);
      },
    ),
    { seed: SEED, numRuns: 500 },
  );
});

it.run();
