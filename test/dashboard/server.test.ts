import { createPublicKey, type JsonWebKey } from 'node:crypto';
import { request } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { EarView } from '../../gateway/api/routes/rounds.ts';
import type { DeviceDetailView } from '../../gateway/api/views.ts';
import type { SessionView } from '../../gateway/dashboard/dashboard.ts';
import type { FleetPage } from '../../gateway/dashboard/fleet-query.ts';
import { CONTENT_SECURITY_POLICY } from '../../gateway/dashboard/security-headers.ts';
import type { BatchProgress } from '../../gateway/rounds/batches.ts';
import { verifyEarCwt, verifyEarJwt } from '../../gateway/verifier/ear.ts';
import type { SimDevice } from '../equipment/sim/sim-device.ts';
import { simPolicy } from '../support/sim-devices.ts';
import { type DashboardGateway, startDashboardGateway } from './support/dashboard-gateway.ts';
import { batchDone, type Call, call, cookieOf, openStream, type Reply, type Stream } from './support/http.ts';
import { connectSim } from './support/sim-fleet.ts';

// The dashboard's server side on a real gateway with sim devices: its page and files, signing in,
// the session cookie, roles, CSRF, the fleet overview, EARs, and the live stream.

interface Ctx {
  dg?: DashboardGateway;
  devices: SimDevice[];
  streams: Stream[];
}
const it = suite<Ctx>('dashboard server', { devices: [], streams: [] });

type ErrorBody = { error: { code: string; message: string } };

function expectError(r: Reply, status: number, code: string, message?: RegExp): void {
  assert.is(r.status, status, r.text);
  assert.is((r.json as ErrorBody).error.code, code);
  if (message) assert.match((r.json as ErrorBody).error.message, message);
}

const origin = (ctx: Ctx) => ctx.dg!.url.replace(/\/$/, '');
const api = <T = Record<string, unknown>>(ctx: Ctx, method: string, path: string, c: Call = {}) =>
  call<T>(ctx.dg!.url, method, path, c);

async function signIn(ctx: Ctx, token: string): Promise<{ cookie: string; csrf: string }> {
  const r = await api<SessionView>(ctx, 'POST', 'v1/session', { origin: origin(ctx), body: { token } });
  assert.is(r.status, 200, r.text);
  return { cookie: cookieOf(r), csrf: r.json.csrf! };
}

const untilDone = (ctx: Ctx, id: string) => batchDone(ctx.dg!.url, ctx.dg!.operatorToken, id);

it.before(async (ctx) => {
  ctx.dg = await startDashboardGateway(simPolicy({ periodicMs: 60_000, deadlineMs: 800 }));
  for (let i = 0; i < 2; i++) await connectSim(ctx.dg, ctx.devices, `dash-server/${i}`);
});

it.after(async (ctx) => {
  for (const s of ctx.streams) s.close();
  await Promise.all(ctx.devices.map((d) => d.close()));
  await ctx.dg?.stop();
});

it('the page and its files: no credentials needed, strict CSP, hashed files cached for good', async (ctx) => {
  const page = await api(ctx, 'GET', '');
  assert.is(page.status, 200);
  assert.match(page.headers.get('content-type')!, /^text\/html/);
  assert.is(page.headers.get('content-security-policy'), CONTENT_SECURITY_POLICY);
  assert.match(CONTENT_SECURITY_POLICY, /default-src 'self'/);
  assert.not.match(CONTENT_SECURITY_POLICY, /unsafe-inline|unsafe-eval/);
  assert.is(page.headers.get('cache-control'), 'no-cache');
  assert.is(page.headers.get('x-content-type-options'), 'nosniff');
  assert.not.match(page.text, /<script>|<style|style=/, 'no inline script or style');
  const again = await api(ctx, 'GET', '', { headers: { 'if-none-match': page.headers.get('etag')! } });
  assert.is(again.status, 304);

  const files = [...page.text.matchAll(/(?:src|href)="(assets\/[^"]+)"/g)].map((m) => m[1]!);
  assert.is(files.length, 2, page.text);
  for (const f of files) {
    assert.match(f, /-[A-Z0-9]{8}\.(js|css)$/, 'content-hashed name');
    const r = await api(ctx, 'GET', f);
    assert.is(r.status, 200);
    assert.is(r.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    assert.is(r.headers.get('content-encoding'), 'gzip');
    assert.ok(r.text.length > 1000);
  }
  expectError(await api(ctx, 'GET', 'assets/app-NOPE.js'), 404, 'not-found', /reload the page/);
});

it('API routes, known or not, want credentials', async (ctx) => {
  expectError(await api(ctx, 'GET', 'v1/devices'), 401, 'unauthorized', /sign in to the dashboard/);
  expectError(await api(ctx, 'GET', 'v1/nothing-here'), 401, 'unauthorized');
  expectError(await api(ctx, 'GET', 'v1/events'), 401, 'unauthorized');
  expectError(await api(ctx, 'GET', 'v1/devices', { token: 'wrong' }), 401, 'unauthorized', /viewer\.token/);
  const s = await api<SessionView>(ctx, 'GET', 'v1/session');
  assert.equal(s.json, { role: null, csrf: null });
});

it('sign-in wants the Origin of this server and a token of this gateway; the cookie is HttpOnly, Strict', async (ctx) => {
  const token = ctx.dg!.operatorToken;
  expectError(await api(ctx, 'POST', 'v1/session', { body: { token } }), 403, 'csrf-refused', /no Origin/);
  expectError(
    await api(ctx, 'POST', 'v1/session', { origin: 'http://evil.example', body: { token } }),
    403,
    'csrf-refused',
    /"http:\/\/evil.example" is not this server/,
  );
  expectError(
    await api(ctx, 'POST', 'v1/session', { origin: origin(ctx), body: { token: 'guess' } }),
    401,
    'unauthorized',
  );
  expectError(
    await api(ctx, 'POST', 'v1/session', { origin: origin(ctx), body: { token, remember: true } }),
    400,
    'bad-request',
    /unknown field "remember"/,
  );
  const r = await api<SessionView>(ctx, 'POST', 'v1/session', { origin: origin(ctx), body: { token } });
  assert.is(r.status, 200);
  assert.is(r.json.role, 'operator');
  assert.match(r.json.csrf!, /^[A-Za-z0-9_-]{43}$/);
  const set = r.headers.get('set-cookie')!;
  assert.match(set, /^vigil-session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=86400$/);
  assert.not.match(set, /Secure/, 'plain HTTP on loopback: a Secure cookie would never come back');
  assert.not.ok(set.includes(token), 'the cookie is not the token');
});

it('a session cookie reads like a token; GET /v1/session gives its role and CSRF token', async (ctx) => {
  const { cookie, csrf } = await signIn(ctx, ctx.dg!.viewerToken);
  const devices = await api<{ devices: unknown[] }>(ctx, 'GET', 'v1/devices', { cookie });
  assert.is(devices.status, 200);
  assert.is(devices.json.devices.length, 2);
  assert.equal((await api<SessionView>(ctx, 'GET', 'v1/session', { cookie })).json, { role: 'viewer', csrf });
  const bearer = await api<SessionView>(ctx, 'GET', 'v1/session', { token: ctx.dg!.operatorToken });
  assert.equal(bearer.json, { role: 'operator', csrf: null });
});

it('a change by session cookie needs its CSRF token and this Origin', async (ctx) => {
  const { cookie, csrf } = await signIn(ctx, ctx.dg!.operatorToken);
  const body = { all: true };
  expectError(await api(ctx, 'POST', 'v1/batches', { cookie, body }), 403, 'csrf-refused', /Origin/);
  expectError(
    await api(ctx, 'POST', 'v1/batches', { cookie, body, origin: origin(ctx) }),
    403,
    'csrf-refused',
    /x-vigil-csrf/,
  );
  expectError(
    await api(ctx, 'POST', 'v1/batches', { cookie, body, origin: origin(ctx), csrf: `${csrf.slice(1)}x` }),
    403,
    'csrf-refused',
  );
  expectError(
    await api(ctx, 'POST', 'v1/batches', { cookie, body, origin: 'http://127.0.0.1:1', csrf }),
    403,
    'csrf-refused',
  );
  const ok = await api<BatchProgress>(ctx, 'POST', 'v1/batches', { cookie, body, origin: origin(ctx), csrf });
  assert.is(ok.status, 201, ok.text);
  assert.is((await untilDone(ctx, ok.json.id)).appraised.affirming, 2);
});

it('a viewer reads and watches but cannot trigger or change, by cookie or by token', async (ctx) => {
  const viewer = ctx.dg!.viewerToken;
  const { cookie, csrf } = await signIn(ctx, viewer);
  const id = ctx.devices[0]!.id;
  const asViewer = { cookie, csrf, origin: origin(ctx) };
  expectError(
    await api(ctx, 'POST', 'v1/batches', { ...asViewer, body: { all: true } }),
    403,
    'forbidden',
    /POST \/v1\/batches needs the operator token/,
  );
  expectError(
    await api(ctx, 'PATCH', `v1/devices/${id}/labels`, { ...asViewer, body: { set: { a: 'b' } } }),
    403,
    'forbidden',
  );
  expectError(await api(ctx, 'POST', 'v1/batches', { token: viewer, body: { all: true } }), 403, 'forbidden');
  expectError(await api(ctx, 'DELETE', `v1/admissions/${id}`, { token: viewer }), 403, 'forbidden');
  assert.is((await api(ctx, 'GET', `v1/devices/${id}`, { token: viewer })).status, 200);
  assert.is((await api(ctx, 'GET', 'metrics', { token: viewer })).status, 200);
  assert.is((await api(ctx, 'GET', 'v1/fleet', { cookie })).status, 200);
});

it('signing out ends the session and clears the cookie', async (ctx) => {
  const { cookie, csrf } = await signIn(ctx, ctx.dg!.operatorToken);
  expectError(await api(ctx, 'DELETE', 'v1/session', { cookie }), 403, 'csrf-refused');
  const out = await api(ctx, 'DELETE', 'v1/session', { cookie, csrf, origin: origin(ctx) });
  assert.is(out.status, 200);
  assert.match(out.headers.get('set-cookie')!, /^vigil-session=; .*Max-Age=0/);
  expectError(await api(ctx, 'GET', 'v1/devices', { cookie }), 401, 'unauthorized');
});

it('GET /v1/fleet: counts, labels in use, one page of devices as the API shows them', async (ctx) => {
  const token = ctx.dg!.operatorToken;
  const [a, b] = ctx.devices.map((d) => d.id).sort();
  const labelled = await api(ctx, 'PATCH', `v1/devices/${a}/labels`, {
    token,
    body: { set: { swarm: 'kitchen' } },
  });
  assert.is(labelled.status, 200, labelled.text);
  const all = await api<FleetPage>(ctx, 'GET', 'v1/fleet', { token });
  assert.is(all.json.total, 2);
  assert.is(all.json.counts.affirming, 2);
  assert.equal(all.json.labels, [{ label: 'swarm=kitchen', count: 1 }]);
  assert.equal(
    all.json.devices.map((d) => d.id),
    [a, b],
  );
  assert.is(all.json.devices[0]!.lastRound?.status, 'affirming');
  assert.is(all.json.devices[0]!.connected, true);
  const page2 = await api<FleetPage>(ctx, 'GET', 'v1/fleet?limit=1&offset=1', { token });
  assert.equal(
    page2.json.devices.map((d) => d.id),
    [b],
  );
  const kitchen = await api<FleetPage>(ctx, 'GET', 'v1/fleet?label=swarm=kitchen', { token });
  assert.equal(
    kitchen.json.devices.map((d) => d.id),
    [a],
  );
  const search = await api<FleetPage>(ctx, 'GET', `v1/fleet?q=${b!.slice(3, 11).toUpperCase()}`, { token });
  assert.equal(
    search.json.devices.map((d) => d.id),
    [b],
  );
  expectError(await api(ctx, 'GET', 'v1/fleet?q=<b>', { token }), 400, 'bad-request', /hex digits/);
});

it('JSON of 2 KiB and more is gzipped for clients that accept it, and only for them', async (ctx) => {
  const token = ctx.dg!.operatorToken;
  const id = ctx.devices[0]!.id;
  const set = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`k${i}`, 'v'.repeat(60)]));
  assert.is((await api(ctx, 'PATCH', `v1/devices/${id}/labels`, { token, body: { set } })).status, 200);
  const raw = (encoding?: string) =>
    new Promise<{ headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
      const req = request(new URL(`v1/devices/${id}`, ctx.dg!.url), {
        headers: { authorization: `Bearer ${token}`, ...(encoding && { 'accept-encoding': encoding }) },
      });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
      req.end();
    });
  const plain = await raw();
  assert.is(plain.headers['content-encoding'], undefined);
  assert.ok(plain.body.length >= 2048, `${plain.body.length} bytes`);
  const zipped = await raw('gzip, deflate');
  assert.is(zipped.headers['content-encoding'], 'gzip');
  assert.ok(zipped.body.length < plain.body.length);
  assert.equal(JSON.parse(gunzipSync(zipped.body).toString()), JSON.parse(plain.body.toString()));
  const removed = await api(ctx, 'PATCH', `v1/devices/${id}/labels`, {
    token,
    body: { remove: Object.keys(set) },
  });
  assert.is(removed.status, 200);
});

it('EARs: the CWT the device received, the same claims as a JWT, and the key to check both', async (ctx) => {
  const token = ctx.dg!.viewerToken;
  const device = ctx.devices[0]!;
  const detail = await api<DeviceDetailView>(ctx, 'GET', `v1/devices/${device.id}`, { token });
  const round = detail.json.rounds.find((r) => r.state === 'appraised')!;
  const r = await api<EarView>(ctx, 'GET', `v1/rounds/${round.id}/ear`, { token });
  assert.is(r.status, 200, r.text);
  assert.equal(Object.keys(r.json).sort(), ['cwt', 'jwt', 'kid']);
  assert.equal(Buffer.from(r.json.cwt, 'base64url'), Buffer.from(ctx.dg!.ears.get(round.id)!));
  const jwk = await api<JsonWebKey & { kid: string; alg: string }>(ctx, 'GET', 'v1/ear-key', { token });
  assert.is(jwk.json.alg, 'ES256');
  assert.is(jwk.json.kid, r.json.kid);
  assert.is(jwk.json.d, undefined, 'never the private part');
  const key = createPublicKey({ key: jwk.json, format: 'jwk' });
  const claims = verifyEarCwt(Buffer.from(r.json.cwt, 'base64url'), key);
  assert.is(claims.submods[device.id]?.status, round.status);
  const json = verifyEarJwt(r.json.jwt, key) as { submods: Record<string, { 'ear.status': string }> };
  assert.is(json.submods[device.id]?.['ear.status'], round.status);

  expectError(
    await api(ctx, 'GET', 'v1/rounds/00000000000000000000000000000000/ear', { token }),
    404,
    'round-not-found',
  );
  device.silent = true;
  try {
    const batch = await api<BatchProgress>(ctx, 'POST', 'v1/batches', {
      token: ctx.dg!.operatorToken,
      body: { ids: [device.id] },
    });
    const done = await untilDone(ctx, batch.json.id);
    const stale = done.results[0]!;
    assert.is(stale.state, 'stale');
    expectError(
      await api(ctx, 'GET', `v1/rounds/${stale.round}/ear`, { token }),
      404,
      'ear-not-found',
      /stale/,
    );
  } finally {
    device.silent = false;
  }
});

it('the live stream: hello, rounds as they happen, what was missed after a reconnect', async (ctx) => {
  const token = ctx.dg!.operatorToken;
  const headers = { authorization: `Bearer ${token}` };
  const s = await openStream(ctx.dg!.url, headers);
  ctx.streams.push(s);
  assert.is(s.status, 200);
  const hello = await s.waitFor((f) => f.event === 'hello', 'hello');
  assert.equal(JSON.parse(hello.data), { resumed: false, live: true });
  const first = await api<BatchProgress>(ctx, 'POST', 'v1/batches', { token, body: { all: true } });
  const settled = (batch: string) => (f: { data: string }) =>
    f.data.includes(`"batch":"${batch}"`) && f.data.includes('"state":"appraised"');
  await s.waitFor(settled(first.json.id), 'a settled round of the first batch');
  await untilDone(ctx, first.json.id);
  const lastSeen = s.frames.filter((f) => f.id).at(-1)!.id!;
  s.close();

  const second = await api<BatchProgress>(ctx, 'POST', 'v1/batches', { token, body: { all: true } });
  await untilDone(ctx, second.json.id);
  const again = await openStream(ctx.dg!.url, { ...headers, 'last-event-id': lastSeen });
  ctx.streams.push(again);
  const resumed = await again.waitFor((f) => f.event === 'hello', 'hello');
  assert.equal(JSON.parse(resumed.data), { resumed: true, live: true });
  const replayed = again.frames.filter((f) => f.event === 'message');
  assert.is(replayed.filter(settled(second.json.id)).length, 2, 'both rounds of the batch run while away');
  assert.not.ok(
    replayed.some((f) => f.data.includes(first.json.id)),
    'nothing from before the last event seen',
  );
});

it('the live stream carries posture changes as the gateway publishes them', async (ctx) => {
  const s = await openStream(ctx.dg!.url, { authorization: `Bearer ${ctx.dg!.viewerToken}` });
  ctx.streams.push(s);
  await s.waitFor((f) => f.event === 'hello', 'hello');
  const device = ctx.devices[1]!;
  device.silent = true;
  try {
    await api(ctx, 'POST', 'v1/batches', { token: ctx.dg!.operatorToken, body: { ids: [device.id] } });
    const f = await s.waitFor(
      (x) => x.data.includes('"kind":"posture"') && x.data.includes(device.id) && x.data.includes('"stale"'),
      'the stale posture',
    );
    assert.match(f.id!, /^[0-9a-f]+-\d+$/);
  } finally {
    device.silent = false;
  }
});

it.run();
