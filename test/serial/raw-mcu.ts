import { DEFAULT_BAUD_RATE } from '../../firmware-shims/serial/link.ts';
import { openSerialPort } from '../../firmware-shims/serial/port.ts';
import { encodeFrame, FrameDecoder } from '../../shared/mcu/frame.ts';
import {
  decodeMcuRequest,
  decodeMcuResponse,
  encodeMcuRequest,
  encodeMcuResponse,
  type McuRequest,
  type McuResponse,
} from '../../shared/mcu/messages.ts';
import type { McuFirmware } from '../equipment/mcu/firmware.ts';

// A misbehaving MCU for tests: it reads requests off the MCU's end of a real pseudo-terminal and
// writes back whatever bytes the test chooses (noise, cut or oversized frames, or nothing).

export interface RawMcu {
  readonly requests: McuRequest[];
  close(): Promise<void>;
}

export async function startRawMcu(
  path: string,
  reply: (request: McuRequest) => Uint8Array | undefined,
): Promise<RawMcu> {
  const port = await openSerialPort(path, DEFAULT_BAUD_RATE);
  port.on('error', () => {});
  const decoder = new FrameDecoder();
  const requests: McuRequest[] = [];
  port.on('data', (chunk: Buffer) => {
    for (const e of decoder.push(chunk)) {
      if (!e.ok) continue;
      const request = decodeMcuRequest(e.payload);
      requests.push(request);
      const bytes = reply(request);
      if (bytes) port.write(Buffer.from(bytes));
    }
  });
  return {
    requests,
    close: () => new Promise<void>((resolve) => (port.isOpen ? port.close(() => resolve()) : resolve())),
  };
}

/** The genuine answer of `firmware` to `request`, decoded: what a man in the middle on the UART reads. */
export function answerOf(firmware: McuFirmware, request: McuRequest): McuResponse {
  return decodeMcuResponse(firmware.answer(encodeMcuRequest(request)));
}

/** `response` framed as the answer to the request `req`: the id is not signed, anyone on the line rewrites it. */
export function frameAnswer(response: McuResponse, req: number): Uint8Array {
  return encodeFrame(encodeMcuResponse({ ...response, req }));
}
