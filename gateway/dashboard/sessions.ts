import type { Role } from '../api/auth.ts';

// Dashboard sessions: a token typed once into the sign-in page is exchanged for a random session
// id in an HttpOnly cookie, so the token itself never stays in the browser where a script could
// read it. Each session has its own CSRF token, which the page sends back in a header on every
// request that changes something. Sessions live in the gateway's memory: a restart signs everyone
// out, which is the safe direction.

export interface Session {
  readonly id: string;
  readonly role: Role;
  readonly csrf: string;
  readonly createdAt: number;
  lastUsed: number;
}

export interface SessionOptions {
  readonly now: () => number;
  /** A fresh unguessable string (32 random bytes, base64url). */
  readonly random: () => string;
  /** A session unused this long ends (default 12 h). */
  readonly idleMs?: number;
  /** A session ends this long after sign-in whatever its use (default 24 h). */
  readonly maxAgeMs?: number;
  /** At most this many sessions; signing in past it ends the least recently used (default 256). */
  readonly capacity?: number;
}

export class SessionStore {
  /** Least recently used first: `get` moves a session to the end. */
  private readonly sessions = new Map<string, Session>();
  readonly idleMs: number;
  readonly maxAgeMs: number;
  private readonly capacity: number;

  constructor(private readonly opts: SessionOptions) {
    this.idleMs = opts.idleMs ?? 12 * 3600_000;
    this.maxAgeMs = opts.maxAgeMs ?? 24 * 3600_000;
    this.capacity = opts.capacity ?? 256;
  }

  create(role: Role): Session {
    const now = this.opts.now();
    const session: Session = {
      id: this.opts.random(),
      role,
      csrf: this.opts.random(),
      createdAt: now,
      lastUsed: now,
    };
    this.sessions.set(session.id, session);
    for (const id of this.sessions.keys()) {
      if (this.sessions.size <= this.capacity) break;
      this.sessions.delete(id);
    }
    return session;
  }

  /** The live session with this id, marked used; undefined when unknown or expired. */
  get(id: string): Session | undefined {
    const s = this.sessions.get(id);
    if (!s) return undefined;
    const now = this.opts.now();
    if (now - s.lastUsed >= this.idleMs || now - s.createdAt >= this.maxAgeMs) {
      this.sessions.delete(id);
      return undefined;
    }
    s.lastUsed = now;
    this.sessions.delete(id);
    this.sessions.set(id, s);
    return s;
  }

  delete(id: string): void {
    this.sessions.delete(id);
  }

  get size(): number {
    return this.sessions.size;
  }
}
