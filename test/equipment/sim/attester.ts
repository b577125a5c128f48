import { createHash } from 'node:crypto';
import { type Attester, bind, type Exporter, evidenceOf } from '../../../shared/protocol/attester.ts';
import type { Challenge, Claims, Evidence, Hello, SwEntry, SwPcr } from '../../../shared/protocol/index.ts';
import { simActivateCredential } from './activation.ts';
import { type SimKeys, simKeys } from './keys.ts';
import { PcrBank } from './pcr-bank.ts';
import { type SimClock, simQuote } from './quote.ts';

// A software attester: the simulated TPM (keys, PCR bank, clock) plus what the agent adds on top
// of it (the software log measured into swPcr, the claims body, the binding). It answers a
// challenge exactly as the agent's challenge handler does, synchronously and without I/O, so a
// fleet of thousands fits one process. Load tests only: the gateway refuses it unless the policy
// sets allowSim.

/** Software the attester reports as measured, one entry per measurement into swPcr. */
export interface SimSoftware {
  readonly name: string;
  readonly version: string;
  /** SHA-256 of the software's manifest: bytes, or 64 lowercase hex digits. */
  readonly digest: Uint8Array | string;
}

export interface SimAttesterOptions {
  /** Measured into swPcr at start, in order; default: one entry, `SIM_SOFTWARE`. */
  readonly software?: readonly SimSoftware[];
  /** PCR the software log is extended into: 8 to 15, default 14. */
  readonly swPcr?: number;
  /** Same seed, same EK and AK (and so the same device id); random when absent. */
  readonly seed?: Uint8Array | string;
  /** Initial TPM clock, ms (default: a random point in the first 10^9 ms of the TPM's life). */
  readonly clockMs?: bigint;
}

export const SIM_AGENT = 'vigil-sim/1';

/** The software a sim device runs unless told otherwise. */
export const SIM_SOFTWARE: SimSoftware = {
  name: 'vigil-sim',
  version: '1.0.0',
  digest: createHash('sha256').update('vigil-sim 1.0.0 manifest').digest('hex'),
};

/** The policy reference value (referenceValues.software entry) admitting `software`. */
export function softwareReference(software: SimSoftware): { name: string; version: string; digest: string } {
  return { name: software.name, version: software.version, digest: digestHex(software.digest) };
}

function digestHex(d: Uint8Array | string): string {
  return typeof d === 'string' ? d.toLowerCase() : Buffer.from(d).toString('hex');
}

function digestBytes(d: Uint8Array | string): Uint8Array {
  if (typeof d !== 'string') return d;
  if (!/^[0-9a-fA-F]{64}$/.test(d)) throw new RangeError(`software digest must be 64 hex digits, got "${d}"`);
  return new Uint8Array(Buffer.from(d, 'hex'));
}

export class SimAttester implements Attester {
  readonly keys: SimKeys;
  readonly swPcr: SwPcr;
  readonly pcrs = new PcrBank();
  readonly log: SwEntry[] = [];
  readonly clock: SimClock;
  /** Set when the log restarted (a simulated reset) since the last answer: send it from 0. */
  #restarted = false;

  constructor(opts: SimAttesterOptions = {}) {
    const swPcr = opts.swPcr ?? 14;
    if (!Number.isInteger(swPcr) || swPcr < 8 || swPcr > 15)
      throw new RangeError(`swPcr must be 8 to 15, got ${swPcr}`);
    this.swPcr = swPcr as SwPcr;
    const seed = typeof opts.seed === 'string' ? new TextEncoder().encode(opts.seed) : opts.seed;
    this.keys = simKeys(seed);
    const base = opts.clockMs ?? BigInt(Math.floor(Math.random() * 1e9));
    const started = Date.now();
    this.clock = {
      clock: () => base + BigInt(Date.now() - started),
      resetCount: 0,
      restartCount: 0,
    };
    for (const s of opts.software ?? [SIM_SOFTWARE]) this.measure(s);
  }

  /** Extends swPcr with a software digest and appends it to the log, as the agent does. */
  measure(software: SimSoftware): void {
    const digest = digestBytes(software.digest);
    this.pcrs.extend(this.swPcr, digest);
    this.log.push({ digest, name: software.name, version: software.version });
  }

  /** A TPM reset (reboot): PCRs zero, resetCount up, the software log starts over. */
  reset(software: readonly SimSoftware[] = [SIM_SOFTWARE]): void {
    this.pcrs.reset();
    this.clock.resetCount++;
    this.log.length = 0;
    this.#restarted = true;
    for (const s of software) this.measure(s);
  }

  hello(): Hello {
    return {
      t: 'hello',
      ek: this.keys.ekPublicArea,
      ak: this.keys.akPublicArea,
      attester: 'sim',
      agent: SIM_AGENT,
      swPcr: this.swPcr,
    };
  }

  /** TPM2_ActivateCredential in software; throws ActivationError as a TPM returns an error. */
  activate(blob: Uint8Array, secret: Uint8Array): Uint8Array {
    return simActivateCredential(this.keys, blob, secret);
  }

  /**
   * Evidence for a challenge, bound to `exporter` (the connection's B for the challenge's nonce).
   * `claims` may alter the body before it is signed, to try what an attacker would.
   */
  evidence(c: Challenge, exporter: Uint8Array, claims: (c: Claims) => Claims = (x) => x): Evidence {
    let activation: Uint8Array | undefined;
    if (c.activate) {
      try {
        activation = this.activate(c.activate.blob, c.activate.secret);
      } catch {
        // As the agent: answer without it, and the gateway says activation-failed.
        activation = undefined;
      }
    }
    const asked = c.logs.sw ?? 0;
    const from = this.#restarted || asked > this.log.length ? 0 : asked;
    this.#restarted = false;
    const current = this.log.at(-1);
    const { body, qualifyingData } = bind(
      claims({
        nonce: c.nonce,
        pcrs: this.pcrs.readMany(c.pcrs),
        sw: { name: current?.name ?? 'none', version: current?.version ?? 'none' },
        logs: { sw: { from, entries: this.log.slice(from), more: false } },
        ...(activation && { activation }),
        // As the agent: the device clock in the first round of a connection only.
        ...(c.reason === 'onboard' && { time: Date.now() }),
      }),
      exporter,
    );
    return evidenceOf(c, body, simQuote(this.keys, this.pcrs, this.clock, qualifyingData, c.pcrs));
  }

  async answer(c: Challenge, exporter: Exporter): Promise<Evidence> {
    return this.evidence(c, exporter(c.nonce));
  }
}
