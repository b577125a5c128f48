import type { BatchProgress } from '../../../gateway/rounds/batches.ts';

// Requests to the dashboard's API server as a browser or a script makes them: with a bearer token
// or a session cookie, an Origin, the CSRF header; and its event stream read frame by frame.

export interface Reply<T = unknown> {
  readonly status: number;
  readonly json: T;
  readonly text: string;
  readonly headers: Headers;
}

export interface Call {
  readonly token?: string;
  readonly cookie?: string;
  readonly origin?: string;
  readonly csrf?: string;
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
}

export async function call<T = Record<string, unknown>>(
  base: string,
  method: string,
  path: string,
  c: Call = {},
): Promise<Reply<T>> {
  const res = await fetch(new URL(path, base), {
    method,
    headers: {
      ...(c.token !== undefined && { authorization: `Bearer ${c.token}` }),
      ...(c.cookie !== undefined && { cookie: c.cookie }),
      ...(c.origin !== undefined && { origin: c.origin }),
      ...(c.csrf !== undefined && { 'x-vigil-csrf': c.csrf }),
      ...(c.body !== undefined && { 'content-type': 'application/json' }),
      ...c.headers,
    },
    ...(c.body !== undefined && { body: JSON.stringify(c.body) }),
  });
  const text = await res.text();
  const isJson = res.headers.get('content-type')?.startsWith('application/json') ?? false;
  return {
    status: res.status,
    json: (isJson ? JSON.parse(text) : undefined) as T,
    text,
    headers: res.headers,
  };
}

/** Polls a batch until it is done (the gateway guarantees that by its deadline). */
export async function batchDone(
  base: string,
  token: string,
  id: string,
  timeoutMs = 5000,
): Promise<BatchProgress> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const p = (await call<BatchProgress>(base, 'GET', `v1/batches/${id}`, { token })).json;
    if (p.done) return p;
    if (Date.now() > until)
      throw new Error(`batch ${id} not done after ${timeoutMs} ms: ${JSON.stringify(p)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The `name=value` part of a Set-Cookie header, to send back as Cookie. */
export function cookieOf(reply: Reply): string {
  const set = reply.headers.get('set-cookie');
  if (!set) throw new Error(`no Set-Cookie in the reply (${reply.status} ${reply.text})`);
  return set.split(';')[0]!;
}

export interface Frame {
  readonly id?: string;
  readonly event: string;
  readonly data: string;
  /** A comment line (heartbeat), without the colon. */
  readonly comment?: string;
}

export interface Stream {
  readonly status: number;
  readonly frames: Frame[];
  /** Resolves with the first frame (from the start) that matches, or rejects after timeoutMs. */
  waitFor(match: (f: Frame) => boolean, what: string, timeoutMs?: number): Promise<Frame>;
  close(): void;
}

/** Opens GET /v1/events and parses server-sent events as they arrive. */
export async function openStream(base: string, headers: Record<string, string>): Promise<Stream> {
  const abort = new AbortController();
  const res = await fetch(new URL('v1/events', base), { headers, signal: abort.signal });
  const frames: Frame[] = [];
  const waiters = new Set<() => void>();
  if (res.ok && res.body) {
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    void (async () => {
      let buf = '';
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let end = buf.indexOf('\n\n');
          while (end >= 0) {
            frames.push(parseFrame(buf.slice(0, end)));
            buf = buf.slice(end + 2);
            end = buf.indexOf('\n\n');
          }
          for (const w of waiters) w();
        }
      } catch {
        // Closed by close(): nothing more to read.
      }
    })();
  }
  return {
    status: res.status,
    frames,
    waitFor(match, what, timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const f = frames.find(match);
          if (!f) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(f);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no ${what} within ${timeoutMs} ms; frames: ${JSON.stringify(frames.slice(-5))}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    close: () => abort.abort(),
  };
}

function parseFrame(text: string): Frame {
  let id: string | undefined;
  let event = 'message';
  const data: string[] = [];
  const comments: string[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith(':')) comments.push(line.slice(1).trim());
    else if (line.startsWith('id: ')) id = line.slice(4);
    else if (line.startsWith('event: ')) event = line.slice(7);
    else if (line.startsWith('data: ')) data.push(line.slice(6));
  }
  return {
    ...(id !== undefined && { id }),
    // No data: a heartbeat comment, or a field for the client alone (retry).
    event: data.length > 0 ? event : comments.length > 0 ? 'comment' : 'control',
    data: data.join('\n'),
    ...(comments.length > 0 && { comment: comments.join('\n') }),
  };
}
