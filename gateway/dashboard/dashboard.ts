import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Principal, Role } from '../api/auth.ts';
import { type ApiContext, isConnected } from '../api/context.ts';
import { ApiError } from '../api/errors.ts';
import { onlyKeys, readJson } from '../api/http.ts';
import type { Router } from '../api/router.ts';
import { deviceView } from '../api/views.ts';
import type { EventFeed } from '../events.ts';
import { Activity } from './activity.ts';
import { dashboardAssets, sendAsset } from './assets.ts';
import { clearedSessionCookie, overTls, readCookie, SESSION_COOKIE, sessionCookie } from './cookies.ts';
import { checkOrigin } from './csrf.ts';
import { type FleetPage, parseFleetQuery, sliceFleet } from './fleet-query.ts';
import { LiveStream, type LiveStreamOptions } from './live-stream.ts';
import { SessionStore } from './sessions.ts';

// The operator dashboard as routes of the API server: its page and files, signing in and out
// (a token for a session cookie), the live event stream, and the fleet overview it pages through.

export interface DashboardOptions {
  readonly roleOf: (token: string) => Role | undefined;
  /** The gateway's events; without them the page polls instead of streaming. */
  readonly events?: EventFeed;
  readonly now?: () => number;
  readonly stream?: LiveStreamOptions;
}

/** What sign-in and GET /v1/session return; role null: not signed in. */
export interface SessionView {
  readonly role: Role | null;
  /** Send back in the x-vigil-csrf header with every request that changes something. */
  readonly csrf: string | null;
}

export class Dashboard {
  readonly sessions: SessionStore;
  private readonly stream: LiveStream;
  private readonly activity = new Activity();
  private readonly stopActivity: () => void;
  private readonly now: () => number;

  constructor(
    private readonly ctx: ApiContext,
    private readonly opts: DashboardOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.sessions = new SessionStore({ now: this.now, random: () => randomBytes(32).toString('base64url') });
    this.stream = new LiveStream(opts.events, opts.stream);
    this.stopActivity = opts.events ? this.activity.follow(opts.events, this.now) : () => {};
  }

  /** The principal of the request's session cookie, when it names a live session. */
  principal(req: IncomingMessage): Principal | undefined {
    const id = readCookie(req, SESSION_COOKIE);
    const s = id === undefined ? undefined : this.sessions.get(id);
    return s && { role: s.role, session: { id: s.id, csrf: s.csrf } };
  }

  routes(router: Router): void {
    router.on(
      'GET',
      '/',
      async ({ req }) => {
        const a = (await dashboardAssets()).index;
        return { respond: (res) => sendAsset(req, res, a) };
      },
      'public',
    );
    router.on(
      'GET',
      '/assets/:name',
      async ({ req, params }) => {
        const a = (await dashboardAssets()).files.get(params.name!);
        if (!a)
          throw new ApiError(
            'not-found',
            `no dashboard file ${JSON.stringify(params.name)}: reload the page (the gateway was updated)`,
          );
        return { respond: (res) => sendAsset(req, res, a) };
      },
      'public',
    );

    router.on(
      'POST',
      '/v1/session',
      async ({ req }) => {
        checkOrigin(req);
        const body = await readJson(req);
        onlyKeys(body, ['token'], 'sign-in');
        const role = typeof body.token === 'string' ? this.opts.roleOf(body.token.trim()) : undefined;
        if (role === undefined)
          throw new ApiError(
            'unauthorized',
            "that token is not this gateway's: use operator.token (or viewer.token, to watch only) from the gateway directory",
          );
        const s = this.sessions.create(role);
        const json: SessionView = { role, csrf: s.csrf };
        const cookie = sessionCookie(s.id, Math.floor(this.sessions.maxAgeMs / 1000), overTls(req));
        return { status: 200, json, headers: { 'set-cookie': cookie } };
      },
      'public',
    );
    // Public, so that the page learns it must sign in without an error in the browser's console.
    router.on(
      'GET',
      '/v1/session',
      ({ principal }) => {
        const json: SessionView = { role: principal?.role ?? null, csrf: principal?.session?.csrf ?? null };
        return { status: 200, json };
      },
      'public',
    );
    router.on(
      'DELETE',
      '/v1/session',
      ({ req, principal }) => {
        if (principal?.session) this.sessions.delete(principal.session.id);
        return {
          status: 200,
          json: { signedOut: true },
          headers: { 'set-cookie': clearedSessionCookie(overTls(req)) },
        };
      },
      'viewer',
    );

    router.on('GET', '/v1/events', ({ req }) => ({ respond: (res) => this.stream.attach(req, res) }));

    router.on('GET', '/v1/fleet', async ({ query }) => {
      const slice = sliceFleet(this.ctx.gateway.fleet.all(), parseFleetQuery(query));
      const latest = await this.ctx.gateway.store.latestRounds();
      const json: FleetPage = {
        ...slice,
        devices: slice.devices.map((d) => deviceView(d, isConnected(this.ctx, d.id), latest.get(d.id))),
      };
      return { status: 200, json };
    });
    router.on('GET', '/v1/fleet/activity', () => ({ status: 200, json: this.activity.view(this.now()) }));
  }

  close(): void {
    this.stopActivity();
    this.stream.close();
  }
}
