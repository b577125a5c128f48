import { type FileHandle, open } from 'node:fs/promises';
import { Serializer, type TpmTransport, TpmTransportError } from './transport.ts';

// The kernel's TPM response buffer is one page; no TPM 2.0 response is larger.
const MAX_RESPONSE = 4096;

/**
 * /dev/tpmrm0 (the kernel's resource manager) or /dev/tpm0: write one command, read one response.
 * The kernel enforces one command in flight per open file, so commands are serialised here too.
 */
export class DeviceTransport implements TpmTransport {
  readonly description: string;
  readonly #path: string;
  readonly #timeoutMs: number;
  readonly #serial = new Serializer();
  #file: FileHandle | undefined;

  constructor(path: string, timeoutMs = 120_000) {
    this.#path = path;
    // Generous: an SLB 9670 may spend tens of seconds generating an RSA-2048 primary.
    this.#timeoutMs = timeoutMs;
    this.description = `TPM device ${path}`;
  }

  send(command: Uint8Array): Promise<Uint8Array> {
    return this.#serial.run(async () => {
      const file = await this.#open();
      const exchange = (async () => {
        await file.write(command);
        const buffer = new Uint8Array(MAX_RESPONSE);
        const { bytesRead } = await file.read(buffer, 0, MAX_RESPONSE, null);
        return buffer.slice(0, bytesRead);
      })();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          // Closing abandons the command; the kernel cancels it, and the next send reopens the device.
          this.#file = undefined;
          void file.close().catch(() => undefined);
          reject(new TpmTransportError(`${this.description}: no response within ${this.#timeoutMs} ms`));
        }, this.#timeoutMs);
      });
      try {
        return await Promise.race([exchange, timeout]);
      } catch (err) {
        if (err instanceof TpmTransportError) throw err;
        throw new TpmTransportError(`${this.description}: ${(err as Error).message}`);
      } finally {
        clearTimeout(timer);
      }
    });
  }

  async close(): Promise<void> {
    await this.#serial.run(async () => {
      const file = this.#file;
      this.#file = undefined;
      await file?.close();
    });
  }

  async #open(): Promise<FileHandle> {
    if (this.#file !== undefined) return this.#file;
    try {
      this.#file = await open(this.#path, 'r+');
      return this.#file;
    } catch (err) {
      throw new TpmTransportError(deviceOpenHint(this.#path, err as NodeJS.ErrnoException));
    }
  }
}

export function deviceOpenHint(path: string, err: NodeJS.ErrnoException): string {
  if (err.code === 'ENOENT') {
    return `${path} does not exist: no TPM driver is bound. On a Raspberry Pi with an SLB 9670, enable the tpm-slb9670 overlay: add dtoverlay=tpm-slb9670 to /boot/firmware/config.txt and reboot`;
  }
  if (err.code === 'EACCES' || err.code === 'EPERM') {
    return `${path}: permission denied; add the user to group tss (sudo usermod -aG tss $USER) and log in again`;
  }
  if (err.code === 'EBUSY')
    return `${path} is busy: another process holds it; use /dev/tpmrm0 (the resource manager)`;
  return `cannot open ${path}: ${err.code ?? err.message}`;
}
