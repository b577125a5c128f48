import type { Logger } from 'pino';
import type { LogSource } from '../firmware-shims/logs/source.ts';
import { mcuBudgetMs } from '../firmware-shims/serial/budget.ts';
import type { McuCollector } from '../firmware-shims/serial/collector.ts';
import type { Tpm } from '../firmware-shims/tpm/tpm.ts';
import type { McuClaims } from '../shared/mcu/claims.ts';
import { type Attester, bind, type Exporter, evidenceOf } from '../shared/protocol/attester.ts';
import { decodeGatewayMessage } from '../shared/protocol/envelope.ts';
import { malformed } from '../shared/protocol/errors.ts';
import type { Challenge, Claims, Evidence, Hello, Logs } from '../shared/protocol/messages.ts';
import { parseQuoteAttest } from '../shared/tpm/attest.ts';
import { pcrDigest } from '../shared/tpm/pcr-values.ts';
import type { EkKind } from './config.ts';
import type { SoftwareLog, SoftwareMeasurement } from './software-log.ts';
import type { TpmAccess } from './tpm-access.ts';

// THE challenge handler (PROTOCOL.md §3): onboarding, periodic, on-demand and swarm rounds all
// come through here, so the onboarding path cannot rot apart from the one used every day. The only
// difference a round can make is `activate`, which adds one TPM2_ActivateCredential.
//
// The order matters: PCRs are read before the logs (the kernel appends an IMA entry before it
// extends PCR 10, so the log then covers at least what the PCR does), the body is fixed before the
// quote (its hash is in the qualifying data), and the quote is checked against the PCR values read
// (a PCR extended between the read and the quote would make the gateway report
// pcr-digest-mismatch; the round is redone instead, a bounded number of times).

export type { Exporter } from '../shared/protocol/attester.ts';

export interface HandlerDeps {
  /** What this device says after every CONNECT. */
  readonly hello: Hello;
  readonly tpm: TpmAccess;
  readonly akHandle: number;
  readonly ek: EkKind;
  readonly swLog: SoftwareLog;
  /** What runs now: claimed in `body.sw`, measured by the software log's last entry. */
  readonly software: () => SoftwareMeasurement;
  readonly ima?: LogSource<string>;
  readonly boot?: LogSource<Uint8Array>;
  /** The MCU sub-attesters on the serial ports (docs/serial.md); a device without them has none. */
  readonly mcus?: Pick<McuCollector, 'collect'>;
  readonly logger: Logger;
  /** Device clock for `body.time`; informational. */
  readonly now?: () => number;
}

/** Attempts at a consistent PCR read + quote before answering with what the last one gave. */
export const QUOTE_ATTEMPTS = 3;

/** The digest the quote must carry for the values read (a PCR missing from the read is a TPM fault). */
function expectedDigest(pcrs: readonly number[], values: ReadonlyMap<number, Uint8Array>): Uint8Array {
  return pcrDigest(
    pcrs.map((p) => {
      const v = values.get(p);
      if (v === undefined) throw new Error(`TPM2_PCR_Read returned no SHA-256 value for PCR ${p}`);
      return v;
    }),
  );
}

const isZero = (b: Uint8Array) => b.every((x) => x === 0);

export class ChallengeHandler implements Attester {
  readonly #d: HandlerDeps;
  readonly #now: () => number;
  /** The software log generation the last evidence carried; undefined before the first. */
  #answeredGeneration: number | undefined;
  #warnedMismatch = false;

  constructor(deps: HandlerDeps) {
    this.#d = deps;
    this.#now = deps.now ?? Date.now;
  }

  hello(): Hello {
    return this.#d.hello;
  }

  answer(c: Challenge, exporter: Exporter): Promise<Evidence> {
    return this.handle(c, exporter);
  }

  /**
   * Decodes a payload from the `in` topic that must be a challenge, and answers it. A payload that
   * is not a well-formed challenge throws ProtocolError before the TPM is touched.
   */
  handlePayload(payload: Uint8Array, exporter: Exporter): Promise<Evidence> {
    const m = decodeGatewayMessage(payload);
    if (m.t !== 'challenge') throw malformed(`payload.t: expected "challenge", got "${m.t}"`);
    return this.handle(m, exporter);
  }

  async handle(c: Challenge, exporter: Exporter): Promise<Evidence> {
    const { tpm } = this.#d;
    // The MCUs are asked at once, with what the deadline leaves after the quote, while the TPM
    // activates; the body waits for their records. A silent or broken MCU is a fault record in
    // the body, never a failed round.
    const [activation, mcus] = await Promise.all([
      c.activate ? this.#activate(c.activate.blob, c.activate.secret) : undefined,
      this.#d.mcus?.collect(c.nonce, mcuBudgetMs(c.deadline)),
    ]);
    if (mcus) this.#logMcuFaults(mcus);
    const selection = [{ hash: 'sha256' as const, pcrs: [...c.pcrs] }];
    let restarted = false;
    for (let attempt = 1; ; attempt++) {
      const values = await tpm.run((t) => t.pcrRead(c.pcrs));
      if (!restarted && (await this.#checkSoftwarePcr(values))) {
        // The log started over: read again, so the values include the new measurement.
        restarted = true;
        attempt--;
        continue;
      }
      const software = this.#d.software();
      const claims: Claims = {
        nonce: c.nonce,
        pcrs: values,
        sw: { name: software.name, version: software.version },
        logs: await this.#logs(c),
        ...(activation !== undefined && { activation }),
        time: this.#now(),
        ...(mcus && { mcus }),
      };
      const { body, qualifyingData } = bind(claims, exporter(c.nonce));
      const q = await tpm.run((t) => t.quote(this.#d.akHandle, qualifyingData, selection));
      const consistent =
        Buffer.compare(parseQuoteAttest(q.attest).pcrDigest, expectedDigest(c.pcrs, values)) === 0;
      if (consistent || attempt >= QUOTE_ATTEMPTS) {
        if (!consistent) {
          this.#d.logger.warn(
            { pcrs: c.pcrs, attempts: attempt },
            'PCRs kept changing between read and quote; answering anyway, the gateway will report pcr-digest-mismatch',
          );
        }
        this.#answeredGeneration = this.#d.swLog.generation;
        return evidenceOf(c, body, q);
      }
      this.#d.logger.debug({ attempt }, 'a quoted PCR changed after it was read; reading and quoting again');
    }
  }

  #logMcuFaults(mcus: McuClaims): void {
    for (const [slot, r] of mcus) {
      if (r.kind === 'fault') {
        this.#d.logger.warn(
          { slot, fault: r.fault, detail: r.detail },
          'an MCU gave no evidence this round; carried as a fault record',
        );
      }
    }
  }

  /**
   * TPM2_ActivateCredential with a freshly created EK, flushed afterwards. A failure is not fatal
   * to the round: the evidence goes without `activation` and the gateway reports
   * activation-failed, which tells an operator more than a silent timeout would.
   */
  async #activate(blob: Uint8Array, secret: Uint8Array): Promise<Uint8Array | undefined> {
    const { akHandle, ek } = this.#d;
    try {
      return await this.#d.tpm.run(async (t: Tpm) => {
        const key = await t.createPrimaryEk(ek);
        try {
          return await t.activateCredential(akHandle, key.handle, blob, secret);
        } finally {
          await t.flush(key.handle);
        }
      });
    } catch (e) {
      this.#d.logger.warn(
        { err: (e as Error).message },
        'TPM2_ActivateCredential failed; answering without activation (the gateway will report activation-failed)',
      );
      return undefined;
    }
  }

  /**
   * Compares swPcr, when quoted, with the software log. Zero means the TPM was reset under the
   * running agent: the log starts over (true is returned, the caller reads the PCRs again). Any
   * other difference cannot be repaired by the agent; it is logged once and the evidence goes as
   * it is, so the gateway reports log-mismatch.
   */
  async #checkSoftwarePcr(values: ReadonlyMap<number, Uint8Array>): Promise<boolean> {
    const { swLog, logger } = this.#d;
    const value = values.get(swLog.pcr);
    if (value === undefined || Buffer.compare(value, swLog.expectedPcr()) === 0) return false;
    if (isZero(value)) {
      logger.warn(
        { swPcr: swLog.pcr, entries: swLog.length },
        'the TPM was reset under the running agent (software PCR is zero): starting the software log over',
      );
      await this.#d.tpm.run((t) => swLog.restartAfterReset(t, this.#d.software()));
      return true;
    }
    if (!this.#warnedMismatch) {
      this.#warnedMismatch = true;
      logger.error(
        { swPcr: swLog.pcr, pcr: Buffer.from(value).toString('hex') },
        'the software PCR does not replay from the software log: something else extends it; the gateway will report log-mismatch',
      );
    }
    return false;
  }

  async #logs(c: Challenge): Promise<Logs> {
    const out: { -readonly [K in keyof Logs]: Logs[K] } = {};
    if (c.logs.sw !== undefined) {
      // A log that started over since the last evidence is sent whole, whatever offset the
      // gateway remembers from before: it accepts `from: 0` as a full replay at any time.
      const restarted =
        this.#answeredGeneration !== undefined && this.#answeredGeneration !== this.#d.swLog.generation;
      out.sw = this.#d.swLog.chunk(restarted ? 0 : c.logs.sw);
    }
    for (const name of ['ima', 'boot'] as const) {
      const from = c.logs[name];
      const source = this.#d[name];
      if (from === undefined || source === undefined) continue;
      const r = await source.read(from);
      if (r.kind === 'absent') {
        this.#d.logger.debug(
          { log: name, path: r.path },
          `${name} log ${r.reason}; left out of the evidence`,
        );
        continue;
      }
      // Each branch keeps the entry type of its log; TypeScript cannot correlate them through `name`.
      if (name === 'ima') out.ima = r.chunk as NonNullable<Logs['ima']>;
      else out.boot = r.chunk as NonNullable<Logs['boot']>;
    }
    return out;
  }
}
