import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { ApiError } from './errors.ts';

// The operator token (DIR/operator.token, the same one operators use as MQTT password) as an
// `Authorization: Bearer` credential. Compared through SHA-256 digests so that the comparison is
// constant-time whatever length was sent.

const digest = (s: string) => createHash('sha256').update(s).digest();

export function bearerCheck(token: string): (req: IncomingMessage) => void {
  const want = digest(token);
  return (req) => {
    const header = req.headers.authorization;
    if (header === undefined)
      throw new ApiError(
        'unauthorized',
        'no Authorization header: send "Authorization: Bearer <operator token>" (the token is in the gateway directory, operator.token)',
      );
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m) throw new ApiError('unauthorized', 'the Authorization header must be "Bearer <operator token>"');
    if (!timingSafeEqual(digest(m[1]!), want))
      throw new ApiError(
        'unauthorized',
        'the operator token is wrong: use the one in the gateway directory (operator.token)',
      );
  };
}
