import { cobsDecode, cobsEncode, cobsEncodedBound } from './cobs.ts';
import { crc32 } from './crc32.ts';

// One MCU message on the UART (docs/serial.md §2): the payload, then its CRC-32 little-endian,
// COBS-encoded, between two zero bytes. The leading zero closes whatever a reset or noise left
// half-sent, so a frame is never glued to garbage; the CRC tells line noise (report and resend)
// from a forged message (which only the signatures inside can tell).

export const FRAME_DELIMITER = 0x00;
/** Largest payload a frame carries, either way: an MCU keeps one frame in RAM. */
export const MAX_FRAME_PAYLOAD = 1024;
const CRC_BYTES = 4;

export const FRAME_ERROR_CODES = [
  'frame-too-large',
  'frame-cobs-invalid',
  'frame-too-short',
  'frame-crc-mismatch',
] as const;
export type FrameErrorCode = (typeof FRAME_ERROR_CODES)[number];

/** A frame that could not be taken off the line; the decoder has already resynchronised. */
export class FrameError extends Error {
  constructor(
    readonly code: FrameErrorCode,
    readonly detail: string,
  ) {
    super(`${code}: ${detail}`);
    this.name = 'FrameError';
  }
}

export type FrameEvent =
  | { readonly ok: true; readonly payload: Uint8Array }
  | { readonly ok: false; readonly error: FrameError };

/** The bytes to write for one payload, delimiters included. */
export function encodeFrame(payload: Uint8Array, maxPayload = MAX_FRAME_PAYLOAD): Uint8Array {
  if (payload.length === 0) throw new RangeError('a frame carries at least one payload byte');
  if (payload.length > maxPayload) {
    throw new RangeError(`frame payload of ${payload.length} bytes exceeds the maximum of ${maxPayload}`);
  }
  const body = new Uint8Array(payload.length + CRC_BYTES);
  body.set(payload);
  new DataView(body.buffer).setUint32(payload.length, crc32(payload), true);
  const stuffed = cobsEncode(body);
  const out = new Uint8Array(stuffed.length + 2);
  out[0] = FRAME_DELIMITER;
  out.set(stuffed, 1);
  out[out.length - 1] = FRAME_DELIMITER;
  return out;
}

/** Checks one COBS block taken from between two delimiters. */
function unframe(block: Uint8Array): FrameEvent {
  const body = cobsDecode(block);
  if (typeof body === 'string') return fail('frame-cobs-invalid', body);
  if (body.length < CRC_BYTES + 1) {
    return fail(
      'frame-too-short',
      `${body.length} byte(s) decoded; a frame holds at least 1 payload byte and its 4-byte CRC`,
    );
  }
  const payload = body.subarray(0, body.length - CRC_BYTES);
  const sent = new DataView(body.buffer, body.byteOffset).getUint32(payload.length, true);
  const computed = crc32(payload);
  if (sent !== computed) {
    return fail(
      'frame-crc-mismatch',
      `CRC-32 sent ${hex32(sent)}, computed ${hex32(computed)} over ${payload.length} payload byte(s): line noise?`,
    );
  }
  return { ok: true, payload: payload.slice() };
}

function fail(code: FrameErrorCode, detail: string): FrameEvent {
  return { ok: false, error: new FrameError(code, detail) };
}

function hex32(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

/**
 * Takes frames off a byte stream that arrives in arbitrary chunks. Never throws on input: every
 * defect is a FrameEvent with a FrameError, and decoding resumes at the next delimiter. Memory
 * stays bounded: past the largest valid encoded frame the decoder only counts bytes.
 */
export class FrameDecoder {
  private readonly maxEncoded: number;
  private buf: Uint8Array;
  private length = 0;
  /** Bytes seen since the last delimiter, kept or not. */
  private seen = 0;

  constructor(readonly maxPayload = MAX_FRAME_PAYLOAD) {
    this.maxEncoded = cobsEncodedBound(maxPayload + CRC_BYTES);
    this.buf = new Uint8Array(this.maxEncoded);
  }

  /** Bytes of an unfinished frame waiting for their delimiter (a truncated frame stays here). */
  get pending(): number {
    return this.seen;
  }

  /** Forgets an unfinished frame, e.g. after the port was reopened. */
  reset(): void {
    this.length = 0;
    this.seen = 0;
  }

  push(chunk: Uint8Array): FrameEvent[] {
    const events: FrameEvent[] = [];
    for (const b of chunk) {
      if (b !== FRAME_DELIMITER) {
        if (this.length < this.maxEncoded) this.buf[this.length++] = b;
        this.seen++;
        continue;
      }
      if (this.seen > this.maxEncoded) {
        events.push(
          fail(
            'frame-too-large',
            `${this.seen} encoded bytes before a delimiter; a frame carries at most ${this.maxPayload} payload bytes (${this.maxEncoded} encoded)`,
          ),
        );
      } else if (this.seen > 0) {
        events.push(unframe(this.buf.subarray(0, this.length)));
      }
      // Empty blocks are the leading delimiters of frames: nothing to report.
      this.reset();
    }
    return events;
  }
}
