import { Reader, Writer } from '../../shared/tpm/bytes.ts';
import { type HashName, TPM_CC, TPM_SU } from '../../shared/tpm/constants.ts';
import type { PcrSelection } from '../../shared/tpm/pcr-selection.ts';
import { TPM_RC } from '../../shared/tpm/rc.ts';
import { activateCredential } from './activation.ts';
import * as capability from './capability.ts';
import { type Command, type CommandRunner, marshalCommand, parseResponse, type Response } from './command.ts';
import * as keys from './keys.ts';
import * as nv from './nv.ts';
import * as pcr from './pcr.ts';
import { type Quote, quote } from './quote.ts';
import { backoff, DEFAULT_RETRY, isRetryable, type RetryPolicy, sleep } from './retry.ts';
import { openTransport } from './tcti.ts';
import { commandName, hintFor, TpmError } from './tpm-error.ts';
import type { TpmTransport } from './transport.ts';

/**
 * A TPM 2.0 over a transport. Each method is one TPM command (or a short fixed sequence), so the
 * object slots it uses are visible: every transient handle a method returns is the caller's to flush.
 */
export class Tpm implements CommandRunner {
  readonly transport: TpmTransport;
  readonly #retry: RetryPolicy;

  constructor(transport: TpmTransport, retry: RetryPolicy = DEFAULT_RETRY) {
    this.transport = transport;
    this.#retry = retry;
  }

  /** Opens the TPM named by a tpm2-tools TCTI string, e.g. `device:/dev/tpmrm0` or `swtpm:host=127.0.0.1,port=2321`. */
  static async open(tcti: string, retry?: RetryPolicy): Promise<Tpm> {
    return new Tpm(openTransport(tcti), retry);
  }

  get description(): string {
    return this.transport.description;
  }

  close(): Promise<void> {
    return this.transport.close();
  }

  async attempt(cmd: Command): Promise<Response> {
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

  readPublic(handle: number): Promise<keys.ReadPublicResult> {
    return keys.readPublic(this, handle);
  }

  createPrimaryEk(kind: 'ecc' | 'rsa'): Promise<keys.LoadedKey> {
    return keys.createPrimaryEk(this, kind);
  }

  createAk(ekHandle: number): Promise<keys.CreatedKey> {
    return keys.createAk(this, ekHandle);
  }

  load(ekHandle: number, priv: Uint8Array, publicArea: Uint8Array): Promise<number> {
    return keys.loadUnderEk(this, ekHandle, priv, publicArea);
  }

  evictControl(handle: number, persistentHandle: number): Promise<void> {
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
