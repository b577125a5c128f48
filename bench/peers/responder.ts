import { randomBytes } from 'node:crypto';
import { decodeDeviceMessage, encodeMessage, ProtocolError } from '../../shared/protocol/index.ts';
import { inSlices } from '../slices.ts';
import { percentile } from '../stats.ts';

// The stand-in for a verifier beside a plain broker (bench figure 2, side by side): it speaks
// vigil/1's message shapes at their real sizes and does no attestation. A hello is answered with a
// challenge, evidence with a result whose EAR is random bytes of the length our gateway's EAR has;
// a round sends a fresh challenge (random round id and nonce, as ours) to every device. So the
// same sim fleet, doing the same work per round, runs against the transport alone.

/** What the gateway asks in a steady-state round: PCRs 0 and 14, no new software log entries. */
const PCRS = [0, 14];

export interface RoundTiming {
  readonly devices: number;
  readonly failed: number;
  readonly issuedMs: number;
  readonly allAppraisedMs: number;
  readonly appraisalP50Ms: number;
  readonly appraisalP99Ms: number;
}

export class Responder {
  /** Device ids that said hello, in order. */
  readonly #devices = new Set<string>();
  #round: { waiting: Set<string>; t0: number; lastAt: number; done: () => void } | undefined;

  constructor(
    /** Publishes to the device's `in` topic. */
    private readonly send: (deviceId: string, payload: Uint8Array) => void,
    /** Bytes of the EAR our gateway puts in a result. */
    private readonly earBytes: number,
  ) {}

  get devices(): number {
    return this.#devices.size;
  }

  /** A payload a device published on its `out` topic. */
  onMessage(deviceId: string, payload: Uint8Array): void {
    let t: string;
    let round: Uint8Array | undefined;
    try {
      const m = decodeDeviceMessage(payload);
      t = m.t;
      if (m.t === 'evidence') round = m.round;
    } catch (e) {
      if (e instanceof ProtocolError) return;
      throw e;
    }
    if (t === 'hello') {
      this.#devices.add(deviceId);
      this.send(deviceId, this.#challenge('onboard'));
    } else if (round) {
      this.send(deviceId, this.#result(round));
      const r = this.#round;
      if (r?.waiting.delete(deviceId)) {
        r.lastAt = performance.now();
        if (r.waiting.size === 0) r.done();
      }
    }
  }

  /**
   * A challenge to every device that said hello, issued in slices as the gateway's bench driver
   * issues them; resolves when each one's result went out.
   */
  async round(slice = 256): Promise<RoundTiming> {
    const ids = [...this.#devices];
    const done = new Promise<void>((resolve) => {
      this.#round = { waiting: new Set(ids), t0: performance.now(), lastAt: 0, done: resolve };
    });
    const r = this.#round!;
    await inSlices(ids, slice, (id) => this.send(id, this.#challenge('on-demand')));
    const issuedMs = performance.now() - r.t0;
    if (ids.length > 0) await done;
    this.#round = undefined;
    return {
      devices: ids.length,
      failed: 0,
      issuedMs,
      allAppraisedMs: r.lastAt - r.t0,
      appraisalP50Ms: percentile([], 0.5),
      appraisalP99Ms: percentile([], 0.99),
    };
  }

  #challenge(reason: 'onboard' | 'on-demand'): Uint8Array {
    return encodeMessage({
      t: 'challenge',
      round: new Uint8Array(randomBytes(16)),
      nonce: new Uint8Array(randomBytes(32)),
      reason,
      pcrs: PCRS,
      logs: { sw: reason === 'onboard' ? 0 : 1 },
      deadline: 60_000,
    });
  }

  #result(round: Uint8Array): Uint8Array {
    return encodeMessage({
      t: 'result',
      round,
      status: 'affirming',
      reasons: [],
      expires: Date.now() + 3_600_000,
      ear: new Uint8Array(randomBytes(this.earBytes)),
    });
  }
}
