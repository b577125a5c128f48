import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Principal } from '../api/auth.ts';
import { ApiError } from '../api/errors.ts';
import { overTls } from './cookies.ts';

// Requests that change something and ride on the session cookie must prove they come from the
// dashboard's own page: SameSite=Strict already keeps other sites' requests cookie-less; on top of
// it the Origin must be this server's and the session's CSRF token must come back in a header
// that only a script of this origin can set. Bearer-token requests carry no ambient credential
// and need neither.

export const CSRF_HEADER = 'x-vigil-csrf';

const safe = (method: string | undefined) => method === 'GET' || method === 'HEAD';

/** Refuses a request whose Origin header is absent or not this server's own origin. */
export function checkOrigin(req: IncomingMessage): void {
  const origin = req.headers.origin;
  const own = `${overTls(req) ? 'https' : 'http'}://${req.headers.host ?? ''}`;
  if (origin === undefined)
    throw new ApiError(
      'csrf-refused',
      `no Origin header: the dashboard's requests carry one; scripts use "Authorization: Bearer <token>" instead of the session cookie`,
    );
  if (origin !== own)
    throw new ApiError('csrf-refused', `Origin ${JSON.stringify(origin)} is not this server (${own})`);
}

/** For a session-cookie request that is not a read: the Origin and the session's CSRF token. */
export function checkCsrf(req: IncomingMessage, principal: Principal | undefined): void {
  if (!principal?.session || safe(req.method)) return;
  checkOrigin(req);
  const sent = req.headers[CSRF_HEADER];
  const got = Buffer.from(typeof sent === 'string' ? sent : '');
  const want = Buffer.from(principal.session.csrf);
  if (got.length !== want.length || !timingSafeEqual(got, want))
    throw new ApiError(
      'csrf-refused',
      `missing or wrong ${CSRF_HEADER} header: reload the dashboard (the token comes with the session)`,
    );
}
