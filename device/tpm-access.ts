import type { PinnedEk } from '../firmware-shims/tpm/bus-session.ts';
import type { Tpm } from '../firmware-shims/tpm/tpm.ts';
import { TpmTransportError } from '../firmware-shims/tpm/transport.ts';

/**
 * The agent's one way to the TPM: one operation at a time, over one transport opened on first use
 * and reopened after it broke (swtpm restarted, the device node vanished and came back). Between
 * operations the agent holds the transport only, never a transient object: every operation that
 * creates one flushes it before it ends (an SLB 9670 has three object slots).
 */
export class TpmAccess {
  readonly tcti: string;
  #tpm: Promise<Tpm> | undefined;
  #tail: Promise<unknown> = Promise.resolve();
  #closed = false;
  /** The EK the bus sessions are salted to, kept across reopened transports. */
  #pinnedEk: PinnedEk | undefined;

  constructor(tcti: string) {
    this.tcti = tcti;
  }

  /** Runs `fn` after every earlier operation settled. */
  run<T>(fn: (tpm: Tpm) => Promise<T>): Promise<T> {
    const result = this.#tail.then(() => this.#runNow(fn));
    this.#tail = result.catch(() => undefined);
    return result;
  }

  async #runNow<T>(fn: (tpm: Tpm) => Promise<T>): Promise<T> {
    if (this.#closed) throw new Error(`TPM access to ${this.tcti} is closed`);
    if (this.#tpm === undefined) {
      // Lazy: `status` and `help` never load the TPM stack at all.
      const pinnedEk = this.#pinnedEk;
      this.#tpm = import('../firmware-shims/tpm/tpm.ts').then(({ Tpm }) =>
        Tpm.open(this.tcti, undefined, { pinnedEk }),
      );
    }
    let tpm: Tpm;
    try {
      tpm = await this.#tpm;
    } catch (e) {
      this.#tpm = undefined;
      throw e;
    }
    try {
      return await fn(tpm);
    } catch (e) {
      if (e instanceof TpmTransportError) {
        // The next operation opens a fresh transport instead of reusing a broken one, its bus
        // sessions salted to the same EK (never in the clear for want of a pin).
        this.#pinnedEk = tpm.pinnedEk ?? this.#pinnedEk;
        this.#tpm = undefined;
        await tpm.close().catch(() => undefined);
      }
      throw e;
    }
  }

  /** Closes the transport once every queued operation settled; later operations fail. */
  close(): Promise<void> {
    const done = this.#tail.then(async () => {
      this.#closed = true;
      const tpm = this.#tpm;
      this.#tpm = undefined;
      if (tpm !== undefined) await (await tpm).close();
    });
    this.#tail = done.catch(() => undefined);
    return done.catch(() => undefined);
  }
}
