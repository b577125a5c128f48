import type { SerialPort } from 'serialport';
import { DEFAULT_BAUD_RATE } from '../../../firmware-shims/serial/link.ts';
import { openSerialPort } from '../../../firmware-shims/serial/port.ts';
import { encodeFrame, FrameDecoder } from '../../../shared/mcu/frame.ts';
import { McuFirmware, type McuFirmwareOptions } from './firmware.ts';

// The MCU emulator on the MCU's end of a serial line (a socat pseudo-terminal in tests): frames
// in, the firmware's answers out. Frames that fail their CRC are dropped, as the protocol asks
// of an MCU: the agent resends.

export interface McuEmulatorOptions extends McuFirmwareOptions {
  readonly path: string;
  readonly baudRate?: number;
  /** Delay before each answer, in ms: a slow MCU (and time to unplug one mid-request). */
  readonly delayMs?: number;
}

export interface McuEmulator {
  readonly firmware: McuFirmware;
  /** Requests answered so far. */
  readonly answered: number;
  /** Frames dropped (bad CRC, bad COBS, too large). */
  readonly dropped: number;
  /** Settles when the line goes away (the other end closed, socat killed) or on close(). */
  readonly lineClosed: Promise<void>;
  /** Writes raw bytes onto the line: noise, truncated or oversized frames. */
  inject(bytes: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

function write(port: SerialPort, bytes: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    port.write(Buffer.from(bytes), (err) => (err ? reject(err) : port.drain(() => resolve())));
  });
}

export async function startMcuEmulator(opts: McuEmulatorOptions): Promise<McuEmulator> {
  const firmware = new McuFirmware(opts);
  const port = await openSerialPort(opts.path, opts.baudRate ?? DEFAULT_BAUD_RATE);
  const decoder = new FrameDecoder();
  const timers = new Set<NodeJS.Timeout>();
  const state = { answered: 0, dropped: 0 };
  const reply = (answer: Uint8Array): void => {
    if (!port.isOpen) return;
    port.write(Buffer.from(encodeFrame(answer)));
    state.answered++;
  };
  port.on('data', (chunk: Buffer) => {
    for (const event of decoder.push(chunk)) {
      if (!event.ok) {
        state.dropped++;
        continue;
      }
      const answer = firmware.answer(event.payload);
      if (!opts.delayMs) {
        reply(answer);
        continue;
      }
      const timer = setTimeout(() => {
        timers.delete(timer);
        reply(answer);
      }, opts.delayMs);
      timers.add(timer);
    }
  });
  // The line going away (socat killed) is the test's doing; the emulator just stops.
  port.on('error', () => {});
  const lineClosed = new Promise<void>((resolve) => port.once('close', () => resolve()));
  return {
    firmware,
    lineClosed,
    get answered() {
      return state.answered;
    },
    get dropped() {
      return state.dropped;
    },
    inject: (bytes) => write(port, bytes),
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        if (!port.isOpen) return resolve();
        port.close(() => resolve());
      }),
  };
}
