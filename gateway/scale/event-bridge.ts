import type { Logger } from 'pino';
import type { EventBus, GatewayEvent } from '../events.ts';
import type { ControlBus } from './bus.ts';

// Live-view events across gateways: what happens on each gateway reaches the API streams and the
// dashboard of every gateway (and, for posture, the retained notices of every broker). Events
// leave after the store committed what they describe, so that a gateway hearing of a change
// reads it back; batched, one bus message per commit. Best effort like the EventBus itself: a
// view that missed one reads the store.

/** Longest the events wait for the commit of what they describe. */
const COMMIT_WAIT_MS = 1000;

/** Events per bus message: keeps a message well under Redis' and the receivers' comfort. */
const MAX_PER_MESSAGE = 500;

export interface EventBridgeDeps {
  readonly me: string;
  readonly bus: ControlBus;
  readonly events: EventBus;
  /** Resolves once what was written before is committed (at the store's own pace). */
  readonly committed: () => Promise<void>;
  /** Every event heard from another gateway, after it was published here. */
  readonly heard?: (event: GatewayEvent) => void;
  readonly log: Logger;
}

export class EventBridge {
  /** Events that came from another gateway: published here, never sent back. */
  private readonly remote = new WeakSet<GatewayEvent>();
  private outbox: GatewayEvent[] = [];
  private sending = false;
  private readonly unsubscribe: () => void;

  constructor(private readonly deps: EventBridgeDeps) {
    this.unsubscribe = deps.events.subscribe((e) => {
      if (this.remote.has(e)) return;
      this.outbox.push(e);
      if (!this.sending) void this.send();
    });
    deps.bus.on('events', (m) => {
      if (m.from === deps.me) return;
      for (const e of m.events) {
        this.remote.add(e);
        deps.events.publish(e);
        deps.heard?.(e);
      }
    });
  }

  private async send(): Promise<void> {
    this.sending = true;
    try {
      while (this.outbox.length > 0) {
        // A store that cannot commit does not hold the events back for long: they describe
        // what will be there, and a view that reads the store too early reads it again.
        await Promise.race([this.deps.committed(), new Promise((r) => setTimeout(r, COMMIT_WAIT_MS))]);
        const batch = this.outbox.splice(0, MAX_PER_MESSAGE);
        if (!this.deps.bus.up) continue; // dropped: at most once, like every live event
        await this.deps.bus.toFleet({ t: 'events', from: this.deps.me, events: batch });
      }
    } finally {
      this.sending = false;
    }
  }

  close(): void {
    this.unsubscribe();
    this.outbox = [];
  }
}
