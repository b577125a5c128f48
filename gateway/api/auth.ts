import { createHash, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { ApiError } from './errors.ts';
import type { Access } from './router.ts';

// Who is calling the API. Two roles: the operator (DIR/operator.token, the same one operators use
// as MQTT password) may do everything; a viewer (DIR/viewer.token) may read and watch, never
// trigger or change. Either token is sent as `Authorization: Bearer`, or exchanged once for a
// dashboard session cookie (gateway/dashboard/sessions.ts). Tokens are compared through SHA-256
// digests, so that the comparison is constant-time whatever length was sent.

export type Role = 'operator' | 'viewer';

export interface Principal {
  readonly role: Role;
  /** The dashboard session the request came with; absent for a bearer token. */
  readonly session?: { readonly id: string; readonly csrf: string };
}

const digest = (s: string) => createHash('sha256').update(s).digest();

export interface Tokens {
  readonly operator: string;
  /** Absent when the gateway directory has no viewer.token: no viewer can sign in. */
  readonly viewer?: string;
}

/** A token file's contents; undefined when there is none (viewer.token is optional). */
export function readTokenFile(path: string): string | undefined {
  if (!existsSync(path)) return undefined;
  const token = readFileSync(path, 'utf8').trim();
  if (token === '')
    throw new Error(`${path} is empty: delete it and run \`vigil-gateway init\` to make a new one`);
  return token;
}

/** The role a token grants, if any. */
export function tokenRoles(tokens: Tokens): (token: string) => Role | undefined {
  const operator = digest(tokens.operator);
  const viewer = tokens.viewer === undefined ? undefined : digest(tokens.viewer);
  return (token) => {
    const d = digest(token);
    // Both comparisons run whatever the first says: the time taken tells nothing of the role.
    const isOperator = timingSafeEqual(d, operator);
    const isViewer = viewer !== undefined && timingSafeEqual(d, viewer);
    if (isOperator) return 'operator';
    return isViewer ? 'viewer' : undefined;
  };
}

/** The principal of an `Authorization: Bearer` header; undefined when the header is absent. */
export function bearerPrincipal(
  req: IncomingMessage,
  roleOf: (token: string) => Role | undefined,
): Principal | undefined {
  const header = req.headers.authorization;
  if (header === undefined) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m) throw new ApiError('unauthorized', 'the Authorization header must be "Bearer <operator token>"');
  const role = roleOf(m[1]!);
  if (role === undefined)
    throw new ApiError(
      'unauthorized',
      'the token is wrong: use the one in the gateway directory (operator.token, or viewer.token to read only)',
    );
  return { role };
}

export function noCredentials(): ApiError {
  return new ApiError(
    'unauthorized',
    'no Authorization header: send "Authorization: Bearer <operator token>" (the token is in the gateway directory, operator.token), or sign in to the dashboard at /',
  );
}

/** Refuses a caller whose role may not call a route of this access. */
export function checkRole(access: Access, principal: Principal | undefined, what: string): void {
  if (access === 'public') return;
  if (principal === undefined) throw noCredentials();
  if (access === 'operator' && principal.role !== 'operator')
    throw new ApiError(
      'forbidden',
      `${what} needs the operator token: viewer credentials may read and watch, not trigger or change`,
    );
}
