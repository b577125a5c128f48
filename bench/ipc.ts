import type { ChildProcess } from 'node:child_process';

// A tiny request/response protocol over a forked child's IPC channel: the bench drives the
// gateway and fleet processes with it, so that each runs (and is measured) in its own process.

export interface Request {
  readonly id: number;
  readonly cmd: string;
  readonly args?: unknown;
}

export interface Response {
  readonly id: number;
  readonly ok: boolean;
  readonly value?: unknown;
  readonly error?: string;
}

/** Child side: answers requests with `handlers[cmd](args)`. */
export function serve(handlers: Record<string, (args: unknown) => unknown>): void {
  process.on('message', async (m: Request) => {
    const handler = handlers[m.cmd];
    let response: Response;
    try {
      if (!handler) throw new Error(`unknown command ${m.cmd}`);
      response = { id: m.id, ok: true, value: await handler(m.args) };
    } catch (e) {
      response = { id: m.id, ok: false, error: (e as Error).stack ?? String(e) };
    }
    process.send?.(response);
  });
}

/** Parent side: a call function for one child. */
export function client(child: ChildProcess): <T>(cmd: string, args?: unknown) => Promise<T> {
  let next = 1;
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  child.on('message', (m: Response) => {
    const w = waiting.get(m.id);
    if (!w) return;
    waiting.delete(m.id);
    if (m.ok) w.resolve(m.value);
    else w.reject(new Error(m.error));
  });
  child.on('exit', (code, signal) => {
    for (const w of waiting.values())
      w.reject(new Error(`child exited (${code ?? signal}) before answering`));
    waiting.clear();
  });
  return <T>(cmd: string, args?: unknown) =>
    new Promise<T>((resolve, reject) => {
      const id = next++;
      waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      child.send({ id, cmd, args } satisfies Request);
    });
}
