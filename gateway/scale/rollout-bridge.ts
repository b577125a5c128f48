import type { Logger } from 'pino';
import type { Clock, Random, Timer } from '../../shared/clock.ts';
import { toHex } from '../../shared/tpm/index.ts';
import { RolloutError } from '../rollouts/errors.ts';
import type { ForwardedReport, PeerAnswer, PeerAsk, PeerHandlers, RolloutPeers } from '../rollouts/peers.ts';
import type { ControlBus } from './bus.ts';
import type { Claims } from './claims.ts';

// Rollouts across gateways, on the control bus (docs/rollouts.md §11): an operator's request to
// the gateway that owns the rollout and its answer, members' reports forwarded to the owner, the
// owner's call to send commands in flight again, and who holds a member (its claim). What a
// rollout is lives in PostgreSQL; these messages only say "look" or carry what the device will
// say again when asked again (a command's repeated id is answered with the state reached).

/** How long a request waits for the owner's answer. */
export const ASK_TIMEOUT_MS = 10_000;

export interface RolloutBridgeDeps {
  readonly me: string;
  readonly bus: ControlBus;
  readonly claims: Claims;
  readonly live: () => ReadonlySet<string>;
  /** Whether new claims are being settled after Redis came back (holdings.ts). */
  readonly holdingOff: () => boolean;
  readonly claimTtlMs: number;
  readonly clock: Clock;
  readonly random: Random;
  readonly log: Logger;
}

interface Waiting {
  readonly resolve: (a: PeerAnswer) => void;
  readonly reject: (err: Error) => void;
  readonly timer: Timer;
}

export class RolloutBridge implements RolloutPeers {
  readonly me: string;
  readonly sweepMs: number;
  private readonly waiting = new Map<string, Waiting>();
  private handlers: PeerHandlers | undefined;

  constructor(private readonly d: RolloutBridgeDeps) {
    this.me = d.me;
    this.sweepMs = Math.max(100, Math.round(d.claimTtlMs / 3));
    d.bus.on('rollout-ask', (m) => {
      if (m.from === d.me || !this.handlers) return;
      this.handlers
        .ask(m.from, m.ask)
        .catch((err: Error): PeerAnswer => ({ ok: false, code: 'internal', message: err.message }))
        .then((answer) => d.bus.toGateway(m.from, { t: 'rollout-answer', from: d.me, id: m.id, answer }));
    });
    d.bus.on('rollout-answer', (m) => {
      const w = this.waiting.get(m.id);
      if (!w) return;
      this.waiting.delete(m.id);
      w.timer.cancel();
      w.resolve(m.answer);
    });
    d.bus.on('rollout-report', (m) => {
      if (m.from !== d.me) this.handlers?.report(m.from, m.report);
    });
    d.bus.on('rollout-resend', (m) => {
      if (m.from !== d.me) this.handlers?.resend(m.from, m.rollout);
    });
    d.bus.on('rollout-left', (m) => {
      if (m.from !== d.me) this.handlers?.left(m.from, m.rollout, m.device);
    });
  }

  serve(handlers: PeerHandlers): void {
    this.handlers = handlers;
  }

  settled(): boolean {
    return this.d.bus.up && !this.d.holdingOff();
  }

  live(): ReadonlySet<string> {
    return this.d.live();
  }

  holders(devices: readonly string[]): Promise<(string | null)[]> {
    return this.d.claims.holders(devices);
  }

  async ask(owner: string, ask: PeerAsk): Promise<PeerAnswer> {
    const unreachable = (why: string) =>
      new RolloutError(
        'owner-unreachable',
        `rollout ${ask.rollout} runs on gateway ${owner}, ${why}; if that gateway is gone, a surviving gateway takes the rollout over once its heartbeat lapses: ask again then`,
      );
    const id = toHex(this.d.random(8));
    const answer = new Promise<PeerAnswer>((resolve, reject) => {
      const timer = this.d.clock.after(ASK_TIMEOUT_MS, () => {
        this.waiting.delete(id);
        reject(unreachable(`which did not answer within ${ASK_TIMEOUT_MS} ms`));
      });
      this.waiting.set(id, { resolve, reject, timer });
    });
    const sent = await this.d.bus.toGateway(owner, { t: 'rollout-ask', from: this.me, id, ask });
    if (!sent) {
      const w = this.waiting.get(id);
      this.waiting.delete(id);
      w?.timer.cancel();
      throw unreachable('and the control bus (Redis) is unreachable from here');
    }
    return answer;
  }

  report(owner: string, report: ForwardedReport): Promise<boolean> {
    return this.d.bus.toGateway(owner, { t: 'rollout-report', from: this.me, report });
  }

  resend(rollout: string): Promise<boolean> {
    return this.d.bus.toFleet({ t: 'rollout-resend', from: this.me, rollout });
  }

  left(owner: string, rollout: string, device: string): Promise<boolean> {
    return this.d.bus.toGateway(owner, { t: 'rollout-left', from: this.me, rollout, device });
  }

  close(): void {
    for (const w of this.waiting.values()) {
      w.timer.cancel();
      w.reject(new RolloutError('owner-unreachable', 'this gateway is shutting down: ask another'));
    }
    this.waiting.clear();
  }
}
