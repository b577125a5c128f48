import { connect, type Socket } from 'node:net';
import { Writer } from '../../shared/tpm/bytes.ts';
import { Serializer, type TpmTransport, TpmTransportError } from './transport.ts';

// Microsoft TPM simulator framing, spoken by swtpm's server port (DESIGN.md).
const TPM_SEND_COMMAND = 8;
const TPM_SESSION_END = 20;
// Part 2 bounds a command/response well below this; a larger length means a framing error.
const MAX_RESPONSE = 64 * 1024;

export interface SwtpmOptions {
  host: string;
  port: number;
  locality?: number;
  /** Per command, including connecting. */
  timeoutMs?: number;
  /**
   * How long an idle connection is kept for the next command (default 20 ms): the commands of
   * one round come back to back, and a connect per command would be most of the agent's CPU.
   */
  lingerMs?: number;
}

/**
 * The swtpm socket TCTI. swtpm serves one connection at a time, so the connection is released
 * shortly after no command is queued: holding it would lock out tpm2-tools and every other client. A connection that dropped between commands
 * (swtpm restarted) is replaced on the next command; one that drops during a command fails that
 * command, since the TPM may or may not have run it.
 */
export class SwtpmTransport implements TpmTransport {
  readonly description: string;
  readonly #opts: Required<SwtpmOptions>;
  readonly #serial = new Serializer();
  #socket: Socket | undefined;
  #closed = false;
  #queued = 0;
  #linger: NodeJS.Timeout | undefined;

  constructor(opts: SwtpmOptions) {
    this.#opts = { locality: 0, timeoutMs: 30_000, lingerMs: 20, ...opts };
    this.description = `swtpm at ${opts.host}:${opts.port}`;
  }

  async send(command: Uint8Array): Promise<Uint8Array> {
    this.#queued++;
    clearTimeout(this.#linger);
    try {
      return await this.#serial.run(() => this.#exchange(command));
    } finally {
      if (--this.#queued === 0) {
        this.#linger = setTimeout(() => {
          if (this.#queued === 0) void this.#serial.run(async () => this.#release());
        }, this.#opts.lingerMs);
        this.#linger.unref();
      }
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#linger);
    await this.#serial.run(async () => this.#release());
  }

  // Ends the simulator session politely; swtpm then accepts the next client.
  #release(): void {
    const socket = this.#socket;
    this.#socket = undefined;
    if (socket === undefined || socket.destroyed) return;
    socket.end(new Writer().u32(TPM_SESSION_END).finish());
    setTimeout(() => socket.destroy(), 1000).unref();
  }

  async #connection(): Promise<Socket> {
    if (this.#socket !== undefined && !this.#socket.destroyed && !this.#socket.readableEnded)
      return this.#socket;
    this.#socket?.destroy();
    this.#socket = undefined;
    const { host, port, timeoutMs } = this.#opts;
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect({ host, port });
      const timer = setTimeout(() => {
        s.destroy();
        reject(
          new TpmTransportError(
            `connecting to ${this.description} timed out after ${timeoutMs} ms; is swtpm running on ${host}:${port}?`,
          ),
        );
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        const hint =
          err.code === 'ECONNREFUSED'
            ? `is swtpm running on ${host}:${port}?`
            : 'check the TCTI host and port';
        reject(
          new TpmTransportError(`cannot connect to ${this.description}: ${err.code ?? err.message}; ${hint}`),
        );
      });
    });
    socket.setNoDelay(true);
    // Without a listener an 'error' between commands would crash the process; the next command
    // sees the destroyed socket and reconnects.
    socket.on('error', () => socket.destroy());
    this.#socket = socket;
    return socket;
  }

  async #exchange(command: Uint8Array): Promise<Uint8Array> {
    if (this.#closed) throw new TpmTransportError(`${this.description}: transport is closed`);
    const socket = await this.#connection();
    const frame = new Writer()
      .u32(TPM_SEND_COMMAND)
      .u8(this.#opts.locality)
      .u32(command.length)
      .bytes(command)
      .finish();
    return new Promise<Uint8Array>((resolve, reject) => {
      let buffered = Buffer.alloc(0);
      const cleanup = (): void => {
        clearTimeout(timer);
        socket.off('data', onData);
        socket.off('close', onClose);
      };
      const fail = (message: string): void => {
        cleanup();
        socket.destroy();
        this.#socket = undefined;
        reject(new TpmTransportError(`${this.description}: ${message}`));
      };
      const onData = (chunk: Buffer): void => {
        buffered = Buffer.concat([buffered, chunk]);
        if (buffered.length < 4) return;
        const length = buffered.readUInt32BE(0);
        if (length > MAX_RESPONSE) {
          fail(`response length ${length} is not plausible; framing lost`);
          return;
        }
        if (buffered.length < 4 + length + 4) return;
        const ack = buffered.readUInt32BE(4 + length);
        if (buffered.length > 8 + length) {
          fail(`${buffered.length - 8 - length} unexpected bytes after the response`);
          return;
        }
        if (ack !== 0) {
          fail(`simulator returned status ${ack} after the response`);
          return;
        }
        cleanup();
        resolve(new Uint8Array(buffered.subarray(4, 4 + length)));
      };
      const onClose = (): void =>
        fail(
          'connection closed during a command (swtpm stopped or restarted?); the command may not have run; retry it',
        );
      const timer = setTimeout(
        () => fail(`no response within ${this.#opts.timeoutMs} ms; the connection was reset`),
        this.#opts.timeoutMs,
      );
      socket.on('data', onData);
      socket.once('close', onClose);
      socket.write(frame);
    });
  }
}
