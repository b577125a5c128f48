import { batch, signal } from '@preact/signals';
import type { GatewayEvent } from '../../events.ts';
import type { StreamHello } from '../live-stream.ts';
import { checkSession } from './session.ts';

// The tab's one live stream (v1/events). Views subscribe here rather than opening streams of
// their own. Events are handed out in batches, at most ten times a second, inside one signal
// batch, so that a fleet round's thousands of events re-render each view a few times, not
// thousands. After a reconnect the gateway replays what was missed; when it cannot (too long
// away, or it restarted), or when the gateway has no live feed at all, views are asked to reload
// their snapshot ("resync").

export type LiveState = 'connecting' | 'live' | 'polling' | 'reconnecting';
export const liveState = signal<LiveState>('connecting');

type Listener = (e: GatewayEvent) => void;
const listeners = new Set<Listener>();
const resyncers = new Set<() => void>();

export function onEvent(l: Listener): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}

export function onResync(r: () => void): () => void {
  resyncers.add(r);
  return () => resyncers.delete(r);
}

/**
 * For a view that reloads its snapshot rather than applying events: `reload` runs `delayMs` after
 * the first event `matters` picks (once for all that came meanwhile, so a burst costs one request)
 * and at every resync. Returns the unsubscribe, which also drops a reload not yet run.
 */
export function reloadOn(
  matters: (e: GatewayEvent) => boolean,
  reload: () => void,
  delayMs: number,
): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const offEvent = onEvent((e) => {
    if (!timer && matters(e))
      timer = setTimeout(() => {
        timer = undefined;
        reload();
      }, delayMs);
  });
  const offResync = onResync(reload);
  return () => {
    if (timer) clearTimeout(timer);
    offEvent();
    offResync();
  };
}

export interface LiveLoad<T> {
  readonly fetch: () => Promise<T>;
  readonly apply: (value: T) => void;
  readonly failed: (err: unknown) => void;
  readonly matters: (e: GatewayEvent) => boolean;
  readonly delayMs: number;
}

/**
 * A view's snapshot, loaded now and again as `reloadOn` says. Only the answer to the newest
 * request is applied (answers can arrive out of order), and none once the returned stop ran.
 */
export function liveLoad<T>(o: LiveLoad<T>): () => void {
  let asked = 0;
  let stopped = false;
  const load = async () => {
    const n = ++asked;
    try {
      const value = await o.fetch();
      if (!stopped && n === asked) o.apply(value);
    } catch (e) {
      if (!stopped && n === asked) o.failed(e);
    }
  };
  void load();
  const off = reloadOn(o.matters, () => void load(), o.delayMs);
  return () => {
    stopped = true;
    off();
  };
}

const POLL_MS = 10_000;
let source: EventSource | undefined;
let queue: GatewayEvent[] = [];
let flushTimer: ReturnType<typeof setTimeout> | undefined;
let pollTimer: ReturnType<typeof setInterval> | undefined;
let retryTimer: ReturnType<typeof setTimeout> | undefined;

function flush(): void {
  flushTimer = undefined;
  const events = queue;
  queue = [];
  batch(() => {
    for (const e of events) for (const l of listeners) l(e);
  });
}

function resync(): void {
  for (const r of resyncers) r();
}

export function startLive(): void {
  if (source) return;
  const es = new EventSource('v1/events');
  source = es;
  liveState.value = 'connecting';
  es.addEventListener('hello', (m) => {
    const hello = JSON.parse((m as MessageEvent<string>).data) as StreamHello;
    liveState.value = hello.live ? 'live' : 'polling';
    if (pollTimer) clearInterval(pollTimer);
    pollTimer = hello.live ? undefined : setInterval(resync, POLL_MS);
    if (!hello.resumed) resync();
  });
  es.onmessage = (m) => {
    queue.push(JSON.parse(m.data as string) as GatewayEvent);
    flushTimer ??= setTimeout(flush, 100);
  };
  es.onerror = () => {
    liveState.value = 'reconnecting';
    // The browser retries by itself unless the gateway refused the stream (a response other than
    // 200: the session ended, or too many streams); then check the session and try again later.
    if (es.readyState !== EventSource.CLOSED) return;
    stopLive();
    liveState.value = 'reconnecting';
    void checkSession();
    retryTimer = setTimeout(startLive, 5000);
  };
}

export function stopLive(): void {
  source?.close();
  source = undefined;
  for (const t of [flushTimer, retryTimer]) if (t) clearTimeout(t);
  if (pollTimer) clearInterval(pollTimer);
  flushTimer = retryTimer = pollTimer = undefined;
  queue = [];
}
