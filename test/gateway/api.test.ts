import { request } from 'node:http';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { DeviceDetailView, DeviceView } from '../../gateway/api/views.ts';
import type { BatchProgress } from '../../gateway/rounds/batches.ts';
import { SIM_SOFTWARE, softwareReference } from '../equipment/sim/attester.ts';
import type { SimDevice } from '../equipment/sim/sim-device.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import { connectAffirmedSimDevices, simPolicy } from '../support/sim-devices.ts';

// The operator API against a real gateway with software (sim) devices on real TLS connections:
// its errors (codes and messages), devices and labels, the allowlist, releases, metrics, and a
// batch with a device that does not answer, across a gateway restart.

interface Ctx {
  gw?: TestGateway;
  devices: SimDevice[];
}
const it = suite<Ctx>('operator API', { devices: [] });

interface Reply<T = unknown> {
  status: number;
  json: T;
  text: string;
  headers: Record<string, unknown>;
}

async function api<T = Record<string, unknown>>(
  gw: TestGateway,
  method: string,
  path: string,
  body?: unknown,
  token: string | null = gw.operatorToken,
): Promise<Reply<T>> {
  const res = await fetch(`http://127.0.0.1:${gw.gateway.apiPort}${path}`, {
    method,
    headers: {
      ...(token !== null && { authorization: `Bearer ${token}` }),
      ...(body !== undefined && { 'content-type': 'application/json' }),
    },
    ...(body !== undefined && { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json: json as T, text, headers: Object.fromEntries(res.headers) };
}

type ErrorBody = { error: { code: string; message: string } };

/** Polls a batch until it is done (the gateway guarantees that by its deadline). */
async function untilDone(gw: TestGateway, id: string, timeoutMs = 5000): Promise<BatchProgress> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const p = (await api<BatchProgress>(gw, 'GET', `/v1/batches/${id}`)).json;
    if (p.done) return p;
    if (Date.now() > until)
      throw new Error(`batch ${id} not done after ${timeoutMs} ms: ${JSON.stringify(p)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function expectError(r: Reply, status: number, code: string, message: RegExp): void {
  assert.is(r.status, status, r.text);
  const e = (r.json as ErrorBody).error;
  assert.is(e.code, code);
  assert.match(e.message, message);
}

it.before(async (ctx) => {
  ctx.gw = await startTestGateway({ policy: simPolicy({ periodicMs: 60_000, deadlineMs: 1000 }) });
  await connectAffirmedSimDevices(ctx.gw, ctx.devices, 'api-test', 3);
});

it.after(async (ctx) => {
  await Promise.all(ctx.devices.map((d) => d.close()));
  await ctx.gw?.stop();
});

it('refuses a missing or wrong token with 401 and says where the token is', async (ctx) => {
  const gw = ctx.gw!;
  const none = await api(gw, 'GET', '/v1/devices', undefined, null);
  expectError(none, 401, 'unauthorized', /Authorization.*Bearer.*operator\.token/);
  assert.match(String(none.headers['www-authenticate']), /^Bearer/);
  expectError(await api(gw, 'GET', '/v1/devices', undefined, 'wrong'), 401, 'unauthorized', /token is wrong/);
  expectError(await api(gw, 'GET', '/metrics', undefined, 'wrong'), 401, 'unauthorized', /token/);
  const basic = await fetch(`http://127.0.0.1:${gw.gateway.apiPort}/v1/devices`, {
    headers: { authorization: 'Basic b3BlcmF0b3I6eA==' },
  });
  assert.is(basic.status, 401);
});

it('unknown devices, batches, routes and methods: 404 and 405 with a message', async (ctx) => {
  const gw = ctx.gw!;
  expectError(
    await api(gw, 'GET', '/v1/devices/0123456789abcdef01234567'),
    404,
    'device-not-found',
    /no device "0123456789abcdef01234567".*vigil-gateway devices/,
  );
  expectError(await api(gw, 'GET', '/v1/batches/feedface'), 404, 'batch-not-found', /POST \/v1\/batches/);
  expectError(await api(gw, 'GET', '/v2/things'), 404, 'not-found', /docs\/api\.md/);
  expectError(await api(gw, 'DELETE', '/v1/devices'), 405, 'method-not-allowed', /DELETE/);
  expectError(
    await api(gw, 'POST', '/v1/batches', { ids: ['0123456789abcdef01234567'] }),
    404,
    'device-not-found',
    /unknown device 0123456789abcdef01234567/,
  );
  expectError(
    await api(gw, 'POST', '/v1/batches', { label: 'swarm=nowhere' }),
    404,
    'no-match',
    /no device has label swarm=nowhere/,
  );
});

it('bad selectors and bodies: 400 saying what was wrong and what to send', async (ctx) => {
  const gw = ctx.gw!;
  const bad: [unknown, RegExp][] = [
    [{}, /exactly one field, got none.*"all": true/],
    [{ all: true, label: 'a=b' }, /exactly one field, got all, label/],
    [{ all: 'yes' }, /"all" must be true/],
    [{ label: 'kitchen' }, /expected KEY=VALUE/],
    [{ label: 'a=b c' }, /value "b c"/],
    [{ ids: [] }, /non-empty array/],
    [{ ids: ['ABC'] }, /"ABC" is not a device id/],
    [{ swarm: 'kitchen' }, /unknown selector field "swarm"/],
  ];
  for (const [body, message] of bad)
    expectError(await api(gw, 'POST', '/v1/batches', body), 400, 'bad-selector', message);
  expectError(await api(gw, 'POST', '/v1/batches', '{"all": tru'), 400, 'bad-request', /not valid JSON/);
  expectError(await api(gw, 'POST', '/v1/batches', '[1]'), 400, 'bad-request', /JSON object/);
  expectError(await api(gw, 'GET', '/v1/devices?label=oops'), 400, 'bad-selector', /KEY=VALUE/);
  expectError(await api(gw, 'GET', '/v1/devices?posture=happy'), 400, 'bad-request', /affirming/);
  const id = ctx.devices[0]!.id;
  expectError(await api(gw, 'GET', `/v1/devices/${id}?rounds=many`), 400, 'bad-request', /rounds/);
  expectError(
    await api(gw, 'POST', '/v1/batches', JSON.stringify({ ids: ['a'.repeat(70_000)] })),
    413,
    'body-too-large',
    /over 65536 bytes/,
  );
  // The gateway keeps serving after all of that.
  assert.is((await api(gw, 'GET', '/v1/status')).status, 200);
});

it('a body larger than the limit is refused without being read in full', async (ctx) => {
  const gw = ctx.gw!;
  const status = await new Promise<number>((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port: gw.gateway.apiPort,
      method: 'POST',
      path: '/v1/batches',
      headers: { authorization: `Bearer ${gw.operatorToken}`, 'content-type': 'application/json' },
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    // Chunked, no length announced: the server counts as it reads.
    const chunk = Buffer.alloc(16 * 1024, 0x20);
    for (let i = 0; i < 8; i++) req.write(chunk);
    req.end();
  });
  assert.is(status, 413);
});

it('labels: set and remove, then select by label; bad labels are 400', async (ctx) => {
  const gw = ctx.gw!;
  const [a, b] = ctx.devices as [SimDevice, SimDevice];
  const set = await api<{ device: DeviceView }>(gw, 'PATCH', `/v1/devices/${a.id}/labels`, {
    set: { swarm: 'kitchen', floor: '2' },
  });
  assert.is(set.status, 200, set.text);
  assert.equal(set.json.device.labels, { swarm: 'kitchen', floor: '2' });
  await api(gw, 'PATCH', `/v1/devices/${b.id}/labels`, { set: { swarm: 'kitchen' } });
  const removed = await api<{ device: DeviceView }>(gw, 'PATCH', `/v1/devices/${a.id}/labels`, {
    remove: ['floor'],
  });
  assert.equal(removed.json.device.labels, { swarm: 'kitchen' });

  const listed = await api<{ devices: DeviceView[] }>(gw, 'GET', '/v1/devices?label=swarm%3Dkitchen');
  assert.equal(listed.json.devices.map((d) => d.id).sort(), [a.id, b.id].sort());
  const all = await api<{ devices: DeviceView[] }>(gw, 'GET', '/v1/devices');
  assert.is(all.json.devices.length, 3);
  for (const d of all.json.devices) {
    assert.is(d.posture, 'affirming');
    assert.is(d.connected, true);
    assert.is(d.lastRound?.reason, 'onboard');
    assert.is(d.lastRound?.status, 'affirming');
  }

  expectError(
    await api(gw, 'PATCH', `/v1/devices/${a.id}/labels`, { set: { 'bad key': 'x' } }),
    400,
    'bad-label',
    /label key "bad key"/,
  );
  expectError(
    await api(gw, 'PATCH', `/v1/devices/${a.id}/labels`, { set: { swarm: 'a,b' } }),
    400,
    'bad-label',
    /value "a,b"/,
  );
  expectError(
    await api(gw, 'PATCH', `/v1/devices/${a.id}/labels`, { add: {} }),
    400,
    'bad-request',
    /unknown field "add"/,
  );
});

it('one device: its recent rounds and posture events', async (ctx) => {
  const gw = ctx.gw!;
  const a = ctx.devices[0]!;
  const r = await api<DeviceDetailView>(gw, 'GET', `/v1/devices/${a.id}`);
  assert.is(r.status, 200);
  assert.is(r.json.device.id, a.id);
  assert.is(r.json.device.connections, 1);
  assert.equal(r.json.device.software, [softwareReference(SIM_SOFTWARE)]);
  assert.is(r.json.rounds[0]?.reason, 'onboard');
  assert.is(r.json.rounds[0]?.activate, true);
  assert.ok(r.json.rounds[0]!.appraisedAt! >= r.json.rounds[0]!.issuedAt);
  assert.equal(
    r.json.events.map((e) => [e.from, e.to]),
    [['enrolling', 'affirming']],
  );
});

it('admissions: admit by hash or id, list, revoke (both forms), bad input 400', async (ctx) => {
  const gw = ctx.gw!;
  const d = ctx.devices[2]!;
  const added = await api<{ admitted: string; new: boolean }>(gw, 'POST', '/v1/admissions', {
    ek: d.ekHash.toUpperCase(),
  });
  assert.is(added.status, 201);
  assert.equal(added.json, { admitted: d.ekHash, new: true });
  assert.is(
    (await api(gw, 'POST', '/v1/admissions', { ek: d.ekHash })).status,
    200,
    'admitting twice is fine',
  );
  await api(gw, 'POST', '/v1/admissions', { ek: d.id });
  const list = await api<{ admitted: string[] }>(gw, 'GET', '/v1/admissions');
  assert.equal(list.json.admitted.sort(), [d.ekHash, d.id].sort());
  assert.ok(gw.gateway.policy().admission.isAllowlisted(d.ekHash));
  const revoked = await api<{ revoked: string[] }>(gw, 'DELETE', `/v1/admissions/${d.id}`);
  assert.equal(revoked.json.revoked.sort(), [d.ekHash, d.id].sort(), 'revoking the id revokes the hash too');
  assert.not.ok(gw.gateway.policy().admission.isAllowlisted(d.ekHash));
  expectError(await api(gw, 'DELETE', `/v1/admissions/${d.id}`), 404, 'not-admitted', /not on the allowlist/);
  expectError(
    await api(gw, 'POST', '/v1/admissions', { ek: 'xyz' }),
    400,
    'bad-ek',
    /64 hex digits.*admit --ek FILE/,
  );
});

it('releases: add (replacing a digest), list, remove; the runtime policy follows', async (ctx) => {
  const gw = ctx.gw!;
  const before = gw.gateway.policy().id;
  const digest = 'ab'.repeat(32);
  const added = await api<{ replaced: string | null }>(gw, 'POST', '/v1/releases', {
    name: 'fw',
    version: '2.0',
    digest,
  });
  assert.is(added.status, 201);
  assert.is(added.json.replaced, null);
  assert.is.not(gw.gateway.policy().id, before, 'the policy id covers releases');
  const again = await api<{ replaced: string | null }>(gw, 'POST', '/v1/releases', {
    name: 'fw',
    version: '2.0',
    digest: 'CD'.repeat(32),
  });
  assert.is(again.status, 200);
  assert.is(again.json.replaced, digest);
  const list = await api<{ releases: { name: string; digest: string }[] }>(gw, 'GET', '/v1/releases');
  assert.equal(
    list.json.releases.map((r) => [r.name, r.digest]),
    [['fw', 'cd'.repeat(32)]],
  );
  expectError(
    await api(gw, 'POST', '/v1/releases', { name: 'fw', version: '2 0', digest }),
    400,
    'bad-release',
    /version "2 0"/,
  );
  expectError(
    await api(gw, 'POST', '/v1/releases', { name: 'fw', version: '2', digest: 'abc' }),
    400,
    'bad-release',
    /64 hex digits.*--manifest/,
  );
  assert.is((await api(gw, 'DELETE', '/v1/releases/fw/2.0')).status, 200);
  expectError(
    await api(gw, 'DELETE', '/v1/releases/fw/2.0'),
    404,
    'release-not-found',
    /no registered release fw 2\.0/,
  );
  assert.is(gw.gateway.policy().id, before);
});

it('a batch: rounds on the live connections; a silent device ends stale and the batch completes', async (ctx) => {
  const gw = ctx.gw!;
  const [a, b, c] = ctx.devices as [SimDevice, SimDevice, SimDevice];
  c.silent = true;
  const sessions = ctx.devices.map((d) => gw.gateway.connections.of(d.id)[0]);
  const started = await api<BatchProgress>(gw, 'POST', '/v1/batches', { all: true });
  assert.is(started.status, 201, started.text);
  const batch = started.json;
  assert.equal(batch.selector, { all: true });
  assert.is(batch.devices, 3);
  assert.is(batch.issued, 3);
  assert.is(batch.done, false);

  const p = await untilDone(gw, batch.id);
  assert.is(p.answered, 2);
  assert.is(p.appraised.affirming, 2);
  assert.is(p.stale, 1);
  assert.is(p.pending, 0);
  const staleResult = p.results.find((r) => r.id === c.id);
  const staleRound = (await gw.gateway.store.round(staleResult!.round!))!;
  assert.ok(p.completedAt! >= staleRound.deadlineAt, 'done at the silent device deadline, not before');
  assert.equal([staleResult?.state, staleResult?.codes], ['stale', ['stale']]);
  for (const d of [a, b]) assert.is(p.results.find((r) => r.id === d.id)?.status, 'affirming');
  ctx.devices.forEach((d, i) => {
    assert.is(gw.gateway.connections.of(d.id)[0], sessions[i], 'the same connection answered');
    assert.is(d.connectCount, 1);
  });
  assert.is(gw.gateway.fleet.get(c.id)?.posture, 'stale');
});

it('metrics: Prometheus text with connected devices, postures, results, histograms, batches', async (ctx) => {
  const gw = ctx.gw!;
  const r = await api(gw, 'GET', '/metrics');
  assert.is(r.status, 200);
  assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  const m = r.text;
  assert.match(m, /^vigil_connected_devices 3$/m);
  assert.match(m, /^vigil_devices\{posture="affirming"\} 2$/m);
  assert.match(m, /^vigil_devices\{posture="stale"\} 1$/m);
  assert.match(m, /^vigil_rounds_total\{result="ok"\} 5$/m);
  assert.match(m, /^vigil_rounds_total\{result="stale"\} 1$/m);
  assert.match(m, /^vigil_appraisal_duration_seconds_count 5$/m);
  assert.match(m, /^vigil_appraisal_duration_seconds_bucket\{le="\+Inf"\} 5$/m);
  assert.match(m, /^vigil_round_latency_seconds_count 5$/m);
  assert.match(m, /^vigil_batch_duration_seconds_count 1$/m);
  assert.match(m, /^vigil_batches_open 0$/m);
  // Every sample line is `name{labels} value`: what a scraper parses.
  for (const line of m.trim().split('\n')) {
    if (!line.startsWith('#')) assert.match(line, /^[a-z_]+(\{[a-z]+="[^"]*"\})? [0-9.e+-]+$/, line);
  }
});

it('batch progress survives a gateway restart: pending rounds settle stale at their deadline', async (ctx) => {
  const gw = ctx.gw!;
  const c = ctx.devices[2]!;
  const started = await api<BatchProgress>(gw, 'POST', '/v1/batches', { ids: [c.id] });
  assert.is(started.json.pending, 1);
  await gw.restart();
  const known = await api<BatchProgress>(gw, 'GET', `/v1/batches/${started.json.id}`);
  assert.is(known.status, 200, 'the batch is still known after the restart');
  const p = await untilDone(gw, started.json.id);
  assert.is(p.stale, 1);
  assert.is(p.results[0]?.state, 'stale');
});

it.run();
