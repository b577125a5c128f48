import { equalBytes, Reader, toHex, Writer } from '../../shared/tpm/bytes.ts';
import { type HashName, TPM_CC, TPM_SU } from '../../shared/tpm/constants.ts';
import type { PcrSelection } from '../../shared/tpm/pcr-selection.ts';
import { TPM_RC } from '../../shared/tpm/rc.ts';
import { activateCredential } from './activation.ts';
import { BusSession, type PinnedEk } from './bus-session.ts';
import * as capability from './capability.ts';
import { type Command, type CommandRunner, marshalCommand, parseResponse, type Response } from './command.ts';
import * as keys from './keys.ts';
import * as nv from './nv.ts';
import * as pcr from './pcr.ts';
import { type Quote, quote } from './quote.ts';
import { backoff, DEFAULT_RETRY, isRetryable, type RetryPolicy, sleep } from './retry.ts';
import { openTransport } from './tcti.ts';
import { commandName, hintFor, TpmBusError, TpmError } from './tpm-error.ts';
import type { TpmTransport } from './transport.ts';

export interface BusOptions {
  /** The EK to salt the bus session to, known from provisioning (see `pinEk`); undefined: none yet. */
  pinnedEk?: PinnedEk | undefined;
  /**
   * Default true: once an EK is pinned, quote, PCR read/extend and credential activation run in
   * a salted HMAC session. False sends them in the clear (for comparison only: the bench).
   */
  protectBus?: boolean;
}

/**
 * A TPM 2.0 over a transport. Each method is one TPM command (or a short fixed sequence), so the
 * object slots it uses are visible: every transient handle a method returns is the caller's to flush.
 *
 * Once an EK is pinned, the commands whose answers the gateway relies on, or that return a
 * secret, run in one salted HMAC session kept for the life of this object (bus-session.ts): their
 * responses are HMAC-checked and ActivateCredential's credential travels encrypted. The session
 * holds one of the TPM's session slots until `close` or `endBusSession`.
 */
export class Tpm implements CommandRunner {
  readonly transport: TpmTransport;
  readonly #retry: RetryPolicy;
  readonly #protectBus: boolean;
  #pinned: PinnedEk | undefined;
  #bus: BusSession | undefined;

  constructor(transport: TpmTransport, retry: RetryPolicy = DEFAULT_RETRY, bus: BusOptions = {}) {
    this.transport = transport;
    this.#retry = retry;
    this.#protectBus = bus.protectBus ?? true;
    if (bus.pinnedEk !== undefined) this.pinEk(bus.pinnedEk);
  }

  /** Opens the TPM named by a tpm2-tools TCTI string, e.g. `device:/dev/tpmrm0` or `swtpm:host=127.0.0.1,port=2321`. */
  static async open(tcti: string, retry?: RetryPolicy, bus?: BusOptions): Promise<Tpm> {
    return new Tpm(openTransport(tcti), retry, bus);
  }

  /**
   * Pins the EK the bus session is salted to. provisionAttestationKeys calls it with the EK it
   * read (the one whose hash is the device id); a second pin must name the same EK.
   */
  pinEk(ek: PinnedEk): void {
    if (this.#pinned !== undefined) {
      if (this.#pinned.kind === ek.kind && equalBytes(this.#pinned.name, ek.name)) return;
      throw new TpmBusError(
        'ek-mismatch',
        `pinning the EK on ${this.description}`,
        `the EK is already pinned to the ${this.#pinned.kind} EK ${toHex(this.#pinned.name)}, not ${ek.kind} ${toHex(ek.name)}: ` +
          'this TPM is not the one this Tpm was opened for, or the bus substituted the key',
      );
    }
    this.#pinned = { kind: ek.kind, name: new Uint8Array(ek.name) };
    if (this.#protectBus) this.#bus = new BusSession(this, this.#pinned);
  }

  /** The pinned EK, to open another Tpm on the same TPM with the same pin. */
  get pinnedEk(): PinnedEk | undefined {
    return this.#pinned;
  }

  /** The bus session's handle while one is started; undefined when none is (or the bus is not protected). */
  get busSessionHandle(): number | undefined {
    return this.#bus?.handle;
  }

  /** True when the commands that ask for it run in a salted session. */
  get busProtected(): boolean {
    return this.#bus !== undefined;
  }

  /** Flushes the bus session now (e.g. at the end of a round); the next protected command starts one. */
  async endBusSession(): Promise<void> {
    await this.#bus?.end();
  }

  get description(): string {
    return this.transport.description;
  }

  /** Flushes the bus session (best effort: the transport may be what failed) and closes the transport. */
  async close(): Promise<void> {
    await this.#bus?.end().catch(() => undefined);
    await this.transport.close();
  }

  async attempt(cmd: Command): Promise<Response> {
    if (cmd.session !== undefined && this.#bus !== undefined) return this.#bus.run(cmd);
    const bytes = marshalCommand(cmd);
    const expect = { handles: cmd.responseHandles ?? 0, sessions: cmd.auths?.length ?? 0 };
    for (let attempt = 0; ; attempt++) {
      const res = parseResponse(await this.transport.send(bytes), expect);
      if (res.rc === 0 || !isRetryable(res.rc) || attempt + 1 >= this.#retry.attempts) return res;
      await sleep(backoff(this.#retry, attempt));
    }
  }

  async execute(cmd: Command): Promise<Response> {
    const res = await this.attempt(cmd);
    if (res.rc !== 0)
      throw new TpmError(`${commandName(cmd.code)} on ${this.description}`, res.rc, hintFor(res.rc));
    return res;
  }

  /** TPM2_Startup(CLEAR); a TPM that is already started (TPM_RC_INITIALIZE) counts as success. */
  async startup(): Promise<void> {
    const res = await this.attempt({
      code: TPM_CC.Startup,
      parameters: new Writer().u16(TPM_SU.CLEAR).finish(),
    });
    if (res.rc !== 0 && res.rc !== TPM_RC.INITIALIZE)
      throw new TpmError('TPM2_Startup', res.rc, hintFor(res.rc));
  }

  /** `n` random bytes; the TPM returns at most one digest's worth per call, so this loops. */
  async getRandom(n: number): Promise<Uint8Array> {
    const out = new Writer();
    while (out.length < n) {
      const res = await this.execute({
        code: TPM_CC.GetRandom,
        parameters: new Writer().u16(Math.min(n - out.length, 32)).finish(),
      });
      const r = new Reader(res.parameters, 'TPM2_GetRandom response');
      const bytes = r.tpm2b('randomBytes');
      r.end();
      if (bytes.length === 0) throw new Error('TPM2_GetRandom returned no bytes');
      out.bytes(bytes);
    }
    return out.finish().slice(0, n);
  }

  async flush(handle: number): Promise<void> {
    this.#bus?.forget(handle);
    await this.execute({ code: TPM_CC.FlushContext, parameters: new Writer().u32(handle).finish() });
  }

  properties(first: number, last = first): Promise<Map<number, number>> {
    return capability.properties(this, first, last);
  }

  property(pt: number): Promise<number | undefined> {
    return capability.property(this, pt);
  }

  persistentHandles(): Promise<number[]> {
    return capability.persistentHandles(this);
  }

  handles(type: number): Promise<number[]> {
    return capability.handles(this, type);
  }

  pcrBanks(): Promise<capability.PcrBank[]> {
    return capability.pcrBanks(this);
  }

  eccCurves(): Promise<number[]> {
    return capability.eccCurves(this);
  }

  async readPublic(handle: number): Promise<keys.ReadPublicResult> {
    const result = await keys.readPublic(this, handle);
    this.#bus?.noteLoaded(handle, result.publicArea);
    return result;
  }

  async createPrimaryEk(kind: 'ecc' | 'rsa'): Promise<keys.LoadedKey> {
    const key = await keys.createPrimaryEk(this, kind);
    this.#bus?.noteLoaded(key.handle, key.publicArea);
    return key;
  }

  createAk(ekHandle: number): Promise<keys.CreatedKey> {
    return keys.createAk(this, ekHandle);
  }

  load(ekHandle: number, priv: Uint8Array, publicArea: Uint8Array): Promise<number> {
    return keys.loadUnderEk(this, ekHandle, priv, publicArea);
  }

  evictControl(handle: number, persistentHandle: number): Promise<void> {
    this.#bus?.forget(handle);
    this.#bus?.forget(persistentHandle);
    return keys.evictControl(this, handle, persistentHandle);
  }

  /**
   * Reads one bank. `selection` is a list of SHA-256 PCRs or a one-bank PcrSelection; more than
   * 8 PCRs take several TPM2_PCR_Read calls.
   */
  pcrRead(selection: readonly number[] | PcrSelection): Promise<Map<number, Uint8Array>> {
    if (selection.length > 0 && typeof selection[0] === 'object') {
      const banks = selection as PcrSelection;
      if (banks.length !== 1) throw new RangeError(`pcrRead reads one bank per call, got ${banks.length}`);
      return pcr.pcrRead(this, banks[0]!.pcrs, banks[0]!.hash);
    }
    return pcr.pcrRead(this, selection as readonly number[]);
  }

  pcrExtend(index: number, digest: Uint8Array, hash: HashName = 'sha256'): Promise<void> {
    return pcr.pcrExtend(this, index, digest, hash);
  }

  quote(akHandle: number, qualifyingData: Uint8Array, selection: PcrSelection): Promise<Quote> {
    return quote(this, akHandle, qualifyingData, selection);
  }

  activateCredential(
    akHandle: number,
    ekHandle: number,
    blob: Uint8Array,
    secret: Uint8Array,
  ): Promise<Uint8Array> {
    return activateCredential(this, akHandle, ekHandle, blob, secret);
  }

  nvReadPublic(index: number): Promise<nv.NvPublic> {
    return nv.nvReadPublic(this, index);
  }

  nvRead(index: number): Promise<Uint8Array> {
    return nv.nvRead(this, index);
  }

  readEkCertificate(kind: 'ecc' | 'rsa'): Promise<Uint8Array | undefined> {
    return nv.readEkCertificate(this, kind);
  }
}
