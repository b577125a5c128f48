// The gateway's API as the page calls it: same origin, the session cookie, JSON, and the session's
// CSRF token on every request that changes something. Errors keep the API's stable code.

export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiFailure';
  }
}

let csrf: string | null = null;
let signedOut: () => void = () => {};

export function setCsrf(token: string | null): void {
  csrf = token;
}

/** Called when the gateway no longer knows the session (expired, or the gateway restarted). */
export function onSignedOut(handler: () => void): void {
  signedOut = handler;
}

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

export async function api<T>(method: Method, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrf !== null) headers['x-vigil-csrf'] = csrf;
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
  } catch (e) {
    throw new ApiFailure(0, 'unreachable', `the gateway did not answer (${(e as Error).message})`);
  }
  // Every answer of the API is JSON; anything else (a proxy's error page) has no error code.
  const isJson = res.headers.get('content-type')?.startsWith('application/json') ?? false;
  const json: unknown = isJson ? await res.json() : undefined;
  if (!res.ok) {
    const err = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
    if (res.status === 401 && path !== 'v1/session') signedOut();
    throw new ApiFailure(res.status, err?.code ?? `http-${res.status}`, err?.message ?? `HTTP ${res.status}`);
  }
  return json as T;
}

export function errorText(e: unknown): string {
  return e instanceof ApiFailure ? `${e.code}: ${e.message}` : String(e);
}
