/** Moves one marshalled TPM command to the TPM and its response back. One command at a time. */
export interface TpmTransport {
  send(command: Uint8Array): Promise<Uint8Array>;
  close(): Promise<void>;
  /** Where the TPM is, for error messages, e.g. `swtpm at 127.0.0.1:2321`. */
  readonly description: string;
}

/** The transport could not deliver a command or read its response (as opposed to a TPM error code). */
export class TpmTransportError extends Error {
  override readonly name = 'TpmTransportError';
}

/**
 * Runs `fn` only after every earlier call has settled, so at most one command is in flight:
 * a TPM answers commands strictly in order and neither /dev/tpmrm0 nor swtpm interleaves.
 */
export class Serializer {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(fn, fn);
    this.#tail = result.catch(() => undefined);
    return result;
  }
}
