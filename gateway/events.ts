import type { RoundView } from './api/views.ts';
import type { PostureNotice } from './posture/fleet.ts';
import type { RolloutNotice } from './rollouts/view.ts';

// What happens in the gateway, as events for live views (the dashboard's stream, the operator
// API, other gateways): every posture change, every round issued or settled, every batch that
// moved, every step that changed a rollout. Events describe what was already stored; a listener that misses one can always read the
// store, so delivery here is best effort and never slows the hot path down.

export type GatewayEvent =
  | { readonly kind: 'posture'; readonly notice: PostureNotice }
  | { readonly kind: 'round'; readonly device: string; readonly round: RoundView }
  | {
      readonly kind: 'batch';
      readonly batch: string;
      readonly done: boolean;
      /** Rounds still pending, and settled so far. */
      readonly pending: number;
      readonly settled: number;
    }
  | { readonly kind: 'rollout'; readonly notice: RolloutNotice };

export type EventListener = (event: GatewayEvent) => void;

export interface EventFeed {
  /** Returns the unsubscribe function. */
  subscribe(listener: EventListener): () => void;
}

/** Fan-out to listeners; a listener that throws is reported once per throw and kept. */
export class EventBus implements EventFeed {
  private readonly listeners = new Set<EventListener>();

  constructor(private readonly onListenerError: (err: unknown) => void = () => {}) {}

  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  publish(event: GatewayEvent): void {
    for (const l of this.listeners) {
      try {
        l(event);
      } catch (err) {
        this.onListenerError(err);
      }
    }
  }

  get size(): number {
    return this.listeners.size;
  }
}
