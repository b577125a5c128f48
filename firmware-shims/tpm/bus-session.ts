import { equalBytes, toHex, Writer } from '../../shared/tpm/bytes.ts';
import { TPM_HT } from '../../shared/tpm/constants.ts';
import { objectName } from '../../shared/tpm/name.ts';
import { parsePublic, type TpmPublic } from '../../shared/tpm/public.ts';
import type { Command, CommandRunner, Response } from './command.ts';
import { withFlushed } from './flush.ts';
import type { LoadedKey, ReadPublicResult } from './keys.ts';
import { SaltedSession } from './salted-session.ts';
import { TpmBusError } from './tpm-error.ts';
import { Serializer } from './transport.ts';

/**
 * The EK a Tpm salts its bus session to: its kind (which template recreates it) and its Name,
 * nameAlg || SHA-256(TPMT_PUBLIC), whose digest is the device's ekHash (the device id is its prefix).
 */
export interface PinnedEk {
  kind: 'ecc' | 'rsa';
  name: Uint8Array;
}

/** What the bus session needs from its Tpm; the commands it sends there carry no `session`. */
export interface BusRunner extends CommandRunner {
  readonly description: string;
  flush(handle: number): Promise<void>;
  createPrimaryEk(kind: 'ecc' | 'rsa'): Promise<LoadedKey>;
  readPublic(handle: number): Promise<ReadPublicResult>;
}

// TPM_RC_REFERENCE_S0..S6: the session handle names no loaded session (the TPM was reset, or
// someone flushed it). The TPM refused before running the command, so it is safe to send again.
function sessionGone(rc: number): boolean {
  return rc >= 0x918 && rc <= 0x91e;
}

const handleBytes = (handle: number): Uint8Array => new Writer().u32(handle).finish();

/**
 * The one salted HMAC session a Tpm keeps for the commands that ask for it (`Command.session`):
 * started on first use, reused while it lives (nonces roll per command, so one session serves a
 * whole connection), started again after the TPM lost it, dropped after any failure so a session
 * whose nonces may be out of step is never used again (each failed HMAC would count towards the
 * TPM's dictionary-attack lockout).
 */
export class BusSession {
  readonly pin: PinnedEk;
  readonly #tpm: BusRunner;
  readonly #serial = new Serializer();
  /** Names of loaded objects, for cpHash: an object's Name never changes while its handle holds it. */
  readonly #names = new Map<number, Uint8Array>();
  #session: SaltedSession | undefined;
  /** The pinned EK's public area, once a recreated EK's Name matched the pin. */
  #ekPublic: TpmPublic | undefined;

  constructor(tpm: BusRunner, pin: PinnedEk) {
    this.#tpm = tpm;
    this.pin = pin;
  }

  /** The live session's handle, if one is started. */
  get handle(): number | undefined {
    return this.#session?.handle;
  }

  /** Runs `cmd` in the session; the response is HMAC-checked and decrypted, or TpmBusError is thrown. */
  run(cmd: Command): Promise<Response> {
    return this.#serial.run(() => this.#run(cmd));
  }

  /** Records the Name of the object now at `handle` (it was created, loaded or read there). */
  noteLoaded(handle: number, publicArea: Uint8Array): void {
    const name = objectName(publicArea);
    this.#names.set(handle, name);
    if (this.#ekPublic === undefined && equalBytes(name, this.pin.name))
      this.#ekPublic = parsePublic(publicArea);
  }

  /** `handle` no longer holds the object it held (flushed, evicted). */
  forget(handle: number): void {
    this.#names.delete(handle);
  }

  /** Flushes the session; the next command that asks for one starts a new one. */
  end(): Promise<void> {
    return this.#serial.run(() => this.#drop(true));
  }

  async #run(cmd: Command): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      const session = this.#session ?? (await this.#start(cmd.handles ?? []));
      const names: Uint8Array[] = [];
      for (const h of cmd.handles ?? []) names.push(await this.#nameOf(h));
      const sealed = session.seal(cmd, names);
      let res: Response;
      try {
        res = await this.#tpm.attempt(sealed.command);
      } catch (err) {
        // No answer, or not one we can read: the TPM may have run the command and rolled its
        // nonce, so this session's next HMAC could be refused.
        await this.#drop(true);
        throw err;
      }
      if (res.rc !== 0) {
        // The Name may have been stale (the handle reused) and the session's nonce state is
        // uncertain after a refusal: start both afresh.
        for (const h of cmd.handles ?? []) this.forget(h);
        const gone = sessionGone(res.rc);
        await this.#drop(!gone);
        if (gone && attempt === 0) continue;
        return res;
      }
      try {
        return sealed.open(res);
      } catch (err) {
        await this.#drop(true);
        throw err;
      }
    }
  }

  async #drop(flush: boolean): Promise<void> {
    const session = this.#session;
    this.#session = undefined;
    if (session !== undefined && flush) await this.#tpm.flush(session.handle).catch(() => undefined);
  }

  /**
   * Starts the session with the salt encrypted to the pinned EK. An EK the command already has
   * loaded (ActivateCredential) serves as the salt key; otherwise the EK is recreated from its
   * template, checked against the pin, and flushed once the session is started.
   */
  async #start(handles: readonly number[]): Promise<SaltedSession> {
    const loaded = handles.find((h) => {
      const name = this.#names.get(h);
      return name !== undefined && equalBytes(name, this.pin.name);
    });
    if (loaded !== undefined && this.#ekPublic !== undefined) {
      this.#session = await SaltedSession.start(this.#tpm, { handle: loaded, public: this.#ekPublic });
      return this.#session;
    }
    const ek = await this.#tpm.createPrimaryEk(this.pin.kind);
    this.#session = await withFlushed(this.#tpm, ek.handle, async (handle) => {
      const name = objectName(ek.publicArea);
      if (!equalBytes(name, this.pin.name))
        throw new TpmBusError(
          'ek-mismatch',
          `TPM2_StartAuthSession on ${this.#tpm.description}`,
          `the EK recreated from the ${this.pin.kind} template has Name ${toHex(name)}, the pinned EK (read at provisioning; its hash is the device id) ${toHex(this.pin.name)}: ` +
            'this is not the TPM that was provisioned, or the bus substituted the key. No session is salted to it; ' +
            'if the TPM was really replaced, provision the device again (vigil-agent init)',
        );
      this.#ekPublic = ek.public;
      return SaltedSession.start(this.#tpm, { handle, public: ek.public });
    });
    return this.#session;
  }

  async #nameOf(handle: number): Promise<Uint8Array> {
    const type = handle >>> 24;
    if (type === TPM_HT.TRANSIENT || type === TPM_HT.PERSISTENT) {
      const known = this.#names.get(handle);
      if (known !== undefined) return known;
      // Read over the bus in the clear: a wrong Name only makes the TPM refuse the command (its
      // cpHash differs); it cannot make the TPM run another one.
      const { publicArea } = await this.#tpm.readPublic(handle);
      this.noteLoaded(handle, publicArea);
      return objectName(publicArea);
    }
    if (type === TPM_HT.NV_INDEX)
      throw new RangeError(`a bus session does not authorise NV indices (handle 0x${handle.toString(16)})`);
    // PCRs, hierarchies and sessions are named by their handle.
    return handleBytes(handle);
  }
}
