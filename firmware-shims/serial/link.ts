import type { SerialPort } from 'serialport';
import type { McuFault } from '../../shared/mcu/claims.ts';
import { encodeFrame, FrameDecoder, MAX_FRAME_PAYLOAD } from '../../shared/mcu/frame.ts';
import {
  decodeMcuResponse,
  encodeMcuRequest,
  MAX_REQUEST_ID,
  type McuRequest,
  type McuResponse,
} from '../../shared/mcu/messages.ts';
import { ProtocolError } from '../../shared/protocol/errors.ts';
import { openSerialPort } from './port.ts';

// One UART to one MCU (docs/serial.md): opens the port when a request needs it, so a device
// that was unplugged is found again when it comes back; one request at a time, each with its
// own deadline; every outcome is a value, never an exception, because a round must go on
// whatever an MCU does.

export type LinkOutcome<R> =
  | { readonly ok: true; readonly response: R }
  | { readonly ok: false; readonly fault: McuFault; readonly detail: string };

/** A request without its id: the link numbers requests itself. */
export type McuAsk = { readonly t: 'hello' } | { readonly t: 'evidence'; readonly nonce: Uint8Array };
type Answer<A extends McuAsk> = Extract<McuResponse, { t: A['t'] }>;

export interface SerialLinkOptions {
  readonly path: string;
  readonly baudRate?: number;
  /** Times a request is sent again after a damaged answer (bad CRC, noise), within its deadline. */
  readonly resends?: number;
  readonly maxPayload?: number;
}

export const DEFAULT_BAUD_RATE = 115_200;
const DEFAULT_RESENDS = 2;

interface Pending {
  readonly req: number;
  readonly t: McuAsk['t'];
  /** What went wrong on the line while waiting, for the outcome if no good answer follows. */
  problem?: string;
  settle(outcome: LinkOutcome<McuResponse>): void;
  resend(): void;
}

export class SerialLink {
  private port: SerialPort | undefined;
  private readonly decoder: FrameDecoder;
  private pending: Pending | undefined;
  private nextReq = Math.floor(Math.random() * (MAX_REQUEST_ID + 1));
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(readonly options: SerialLinkOptions) {
    this.decoder = new FrameDecoder(options.maxPayload ?? MAX_FRAME_PAYLOAD);
  }

  get path(): string {
    return this.options.path;
  }

  /** Whether the port is open now (it opens on demand and after a replug). */
  get isOpen(): boolean {
    return this.port?.isOpen ?? false;
  }

  /**
   * Sends one request and waits at most `timeoutMs` (queueing behind an earlier request counts)
   * for its answer. Never rejects.
   */
  request<A extends McuAsk>(ask: A, timeoutMs: number): Promise<LinkOutcome<Answer<A>>> {
    const deadline = Date.now() + timeoutMs;
    const run = this.queue.then(() => this.exchange(ask, deadline, timeoutMs));
    this.queue = run.catch(() => undefined);
    return run.catch(
      (e: unknown): LinkOutcome<Answer<A>> => ({
        ok: false,
        fault: 'malformed',
        detail: `internal error on ${this.path}: ${e instanceof Error ? e.message : String(e)}`,
      }),
    );
  }

  /** Closes the port; later requests report the MCU absent. */
  async close(): Promise<void> {
    this.closed = true;
    const port = this.port;
    this.port = undefined;
    if (port?.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
  }

  private async exchange<A extends McuAsk>(
    ask: A,
    deadline: number,
    timeoutMs: number,
  ): Promise<LinkOutcome<Answer<A>>> {
    if (this.closed) return { ok: false, fault: 'absent', detail: `the link to ${this.path} is closed` };
    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      return {
        ok: false,
        fault: 'timeout',
        detail: `no time left for ${this.path} (waited behind a request)`,
      };
    }
    const opened = await this.open(remaining);
    if (opened !== undefined) return { ok: false, fault: 'absent', detail: opened };
    const port = this.port!;
    const req = this.nextReq;
    this.nextReq = (this.nextReq + 1) % (MAX_REQUEST_ID + 1);
    const frame = encodeFrame(encodeMcuRequest({ ...ask, req } as McuRequest));
    const outcome = await new Promise<LinkOutcome<McuResponse>>((resolve) => {
      let resends = this.options.resends ?? DEFAULT_RESENDS;
      const send = (): void => {
        // Bytes from before this request cannot be its answer: drop any half frame.
        this.decoder.reset();
        port.write(Buffer.from(frame));
      };
      const timer = setTimeout(() => {
        // A frame cut short with nothing after it never reaches a delimiter: it shows only as
        // bytes still pending in the decoder.
        const partial = this.decoder.pending;
        const problem =
          this.pending?.problem ??
          (partial > 0 ? `a frame was cut short (${partial} byte(s), no closing delimiter)` : undefined);
        settle(
          problem !== undefined
            ? { ok: false, fault: 'malformed', detail: `no valid answer from ${this.path}: ${problem}` }
            : {
                ok: false,
                fault: 'timeout',
                detail: `no answer from ${this.path} within ${timeoutMs} ms`,
              },
        );
      }, deadline - Date.now());
      const settle = (o: LinkOutcome<McuResponse>): void => {
        clearTimeout(timer);
        this.pending = undefined;
        resolve(o);
      };
      this.pending = {
        req,
        t: ask.t,
        settle,
        resend: () => {
          if (resends-- > 0) send();
        },
      };
      send();
    });
    return outcome as LinkOutcome<Answer<A>>;
  }

  /** Opens the port if it is not open; a string says why it could not. */
  private async open(timeoutMs: number): Promise<string | undefined> {
    if (this.port?.isOpen) return undefined;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve(`opening ${this.path} took over ${timeoutMs} ms`), timeoutMs);
    });
    const opening = openSerialPort(this.path, this.options.baudRate ?? DEFAULT_BAUD_RATE);
    const port = await Promise.race([opening, timedOut]).catch(
      (err: Error) =>
        `cannot open ${this.path} (${err.message.replace(/^Error: /, '')}): is the MCU connected?`,
    );
    clearTimeout(timer);
    if (typeof port === 'string') {
      // An open that completes after its deadline must not leave the device held.
      void opening.then(
        (late) => late.close(),
        () => undefined,
      );
      return port;
    }
    this.decoder.reset();
    port.on('data', (chunk: Buffer) => this.receive(chunk));
    // An unplugged adapter or a vanished pty shows as an error then a close: the pending
    // request ends now, reported absent, and the next request opens the port again.
    port.on('error', () => {});
    port.once('close', () => {
      if (this.port === port) this.port = undefined;
      this.pending?.settle({
        ok: false,
        fault: 'absent',
        detail: `${this.path} closed during the request (MCU unplugged?)`,
      });
    });
    this.port = port;
    return undefined;
  }

  private receive(chunk: Buffer): void {
    for (const event of this.decoder.push(chunk)) {
      const p = this.pending;
      if (p === undefined) continue; // noise or a late answer between requests
      if (!event.ok) {
        p.problem = event.error.message;
        p.resend();
        continue;
      }
      let response: McuResponse;
      try {
        response = decodeMcuResponse(event.payload);
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e;
        p.problem = `undecodable answer: ${e.detail}`;
        p.resend();
        continue;
      }
      if (response.t === 'error') {
        if (response.req !== undefined && response.req !== p.req) continue;
        p.settle({
          ok: false,
          fault: 'malformed',
          detail: `${this.path} refused the ${p.t} request: ${response.code}${response.detail ? ` (${response.detail})` : ''}`,
        });
        continue;
      }
      if (response.req !== p.req) continue; // an answer to an earlier request that timed out
      if (response.t !== p.t) {
        p.settle({
          ok: false,
          fault: 'malformed',
          detail: `${this.path} answered a ${p.t} request with ${response.t}`,
        });
        continue;
      }
      p.settle({ ok: true, response });
    }
  }
}
