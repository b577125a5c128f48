import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { measureSoftware } from '../../device/software.ts';
import type { DeviceDetailView, DeviceView } from '../../gateway/api/views.ts';
import type { DeviceConnection } from '../../gateway/connections/device-connection.ts';
import type { BatchProgress } from '../../gateway/rounds/batches.ts';
import { deviceIdentity } from '../../shared/protocol/index.ts';
import { toHex } from '../../shared/tpm/index.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import { eventually } from '../support/operator.ts';
import { gatewayCliAt, type Run } from '../support/run.ts';
import { digestOf, ToolsDevice } from '../support/tools-device.ts';
import { startTestAgent, TEST_SOFTWARE, type TestAgent, testSoftwareReference } from './support.ts';

// The operator's side, end to end: three real agents on swtpm, the `vigil-gateway` CLI run as a
// child process against the running gateway's API. An operator registers the agent build from
// its manifest, attests the fleet and a swarm on the live connections, admits a new device by
// its ek.pub, and sees a device that does not answer end stale (and `attest` exit 1).

const ROOT = new URL('../..', import.meta.url).pathname;
const TOOLS_SW = { name: 'tools-fw', version: '1.0', digest: digestOf('tools-fw 1.0 manifest') };

interface Ctx {
  gw?: TestGateway;
  agents: TestAgent[];
  tools?: ToolsDevice;
}
const it = suite<Ctx>('operator CLI against three swtpm agents', { agents: [] });

function cli(gw: TestGateway, args: string[]): Promise<Run> {
  return gatewayCliAt(args, { dir: gw.dir, apiPort: gw.gateway.apiPort });
}

async function api<T>(gw: TestGateway, path: string): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${gw.gateway.apiPort}${path}`, {
    headers: { authorization: `Bearer ${gw.operatorToken}` },
  });
  assert.is(res.status, 200, path);
  return (await res.json()) as T;
}

/** Each agent's gateway-side connection and its own TLS socket, to show nothing reconnected. */
function connections(ctx: Ctx): [DeviceConnection | undefined, unknown][] {
  return ctx.agents.map((a) => [ctx.gw!.gateway.connections.of(a.agent.deviceId)[0], a.agent.socket()]);
}

it.before(async (ctx) => {
  // No software reference values: the agents' build is not registered yet.
  ctx.gw = await startTestGateway({
    policy: { admission: { mode: 'open' }, rounds: { periodicMs: 60_000, deadlineMs: 2000 } },
  });
  ctx.agents = await Promise.all([0, 1, 2].map(() => startTestAgent(ctx.gw!)));
  for (const a of ctx.agents) {
    await eventually(
      () => ctx.gw!.gateway.fleet.get(a.agent.deviceId)?.reasons.includes('sw-not-allowed') ?? false,
      'an unregistered build is sw-not-allowed',
      15_000,
    );
  }
});

it.after(async (ctx) => {
  await Promise.all(ctx.agents.map((a) => a.stop()));
  await ctx.tools?.stop();
  await ctx.gw?.stop();
});

it('release add --manifest registers the build the agent way; attest --all then affirms on the same connections', async (ctx) => {
  const gw = ctx.gw!;
  const manifest = join(gw.dir, 'agent-manifest.txt');
  writeFileSync(manifest, measureSoftware({ ...TEST_SOFTWARE, root: `${ROOT}shared/protocol` }).manifest);
  const added = await cli(gw, ['release', 'add', '--manifest', manifest]);
  assert.is(added.code, 0, added.stderr);
  const ref = testSoftwareReference();
  assert.is(added.stdout.trim(), `registered ${ref.name} ${ref.version} ${ref.digest}`);

  const before = connections(ctx);
  const run = await cli(gw, ['attest', '--all', '--json']);
  assert.is(run.code, 0, run.stdout + run.stderr);
  const p = JSON.parse(run.stdout) as BatchProgress;
  assert.is(p.done, true);
  assert.is(p.devices, 3);
  assert.is(p.appraised.affirming, 3);
  assert.equal(p.results.map((r) => r.id).sort(), ctx.agents.map((a) => a.agent.deviceId).sort());
  assert.match(run.stderr, new RegExp(`batch ${p.id}: 3/3 settled`), 'plain progress lines when not a TTY');
  const after = connections(ctx);
  before.forEach(([session, socket], i) => {
    assert.ok(session);
    assert.is(after[i]![0], session, 'the same gateway-side connection answered');
    assert.is(after[i]![1], socket, 'the agent kept its TLS socket');
  });
  for (const r of p.results) {
    const round = (await gw.gateway.store.round(r.round!))!;
    assert.is(round.reason, 'on-demand');
    assert.is(round.batchId, p.id);
  }
});

it('label, then attest --label: only the swarm is asked; the summary table counts it', async (ctx) => {
  const gw = ctx.gw!;
  const [a, b, c] = ctx.agents.map((x) => x.agent.deviceId) as [string, string, string];
  const labelled = await cli(gw, ['label', a, 'swarm=kitchen', 'floor=2']);
  assert.is(labelled.code, 0, labelled.stderr);
  assert.is(labelled.stdout.trim(), `${a}: swarm=kitchen,floor=2`);
  const res = await fetch(`http://127.0.0.1:${gw.gateway.apiPort}/v1/devices/${b}/labels`, {
    method: 'PATCH',
    headers: { authorization: `Bearer ${gw.operatorToken}` },
    body: JSON.stringify({ set: { swarm: 'kitchen' } }),
  });
  assert.is(res.status, 200);

  const rounds = (await gw.gateway.store.recentRounds(c, 1))[0]?.id;
  const run = await cli(gw, ['attest', '--label', 'swarm=kitchen']);
  assert.is(run.code, 0, run.stdout + run.stderr);
  assert.match(run.stdout, /^Batch [0-9a-f]{16}: 2 devices, done in /);
  assert.match(run.stdout, /^affirming {2}2$/m);
  assert.not.match(run.stdout, /Not affirming/);
  assert.is(
    (await gw.gateway.store.recentRounds(c, 1))[0]?.id,
    rounds,
    'the device outside the swarm was not asked',
  );

  const usage = await cli(gw, ['attest', '--all', a]);
  assert.is(usage.code, 2);
  assert.match(usage.stderr, /exactly one of --all, --label K=V or device ids/);
});

it('devices --json and show --json print what the API returns', async (ctx) => {
  const gw = ctx.gw!;
  const a = ctx.agents[0]!.agent.deviceId;
  const listed = await cli(gw, ['devices', '--json']);
  assert.is(listed.code, 0, listed.stderr);
  const cliDevices = JSON.parse(listed.stdout) as DeviceView[];
  const apiDevices = (await api<{ devices: DeviceView[] }>(gw, '/v1/devices')).devices;
  assert.equal(cliDevices, apiDevices);
  assert.is(cliDevices.length, 3);
  for (const d of cliDevices) {
    assert.is(d.posture, 'affirming');
    assert.is(d.connected, true);
    assert.is(d.lastRound?.reason, 'on-demand');
    assert.type(d.labels, 'object');
  }
  const kitchen = JSON.parse(
    (await cli(gw, ['devices', '--label', 'swarm=kitchen', '--json'])).stdout,
  ) as DeviceView[];
  assert.is(kitchen.length, 2);

  const shown = await cli(gw, ['show', a, '--json']);
  assert.is(shown.code, 0, shown.stderr);
  assert.equal(JSON.parse(shown.stdout), await api<DeviceDetailView>(gw, `/v1/devices/${a}`));
  const detail = JSON.parse(shown.stdout) as DeviceDetailView;
  assert.equal(detail.device.software, [testSoftwareReference()]);
  assert.ok(
    detail.rounds.some((r) => r.codes.includes('sw-not-allowed')),
    'the failed onboarding is in the history',
  );
  assert.equal(
    detail.events.map((e) => e.to),
    ['affirming', 'contraindicated'],
  );

  const missing = await cli(gw, ['show', '0123456789abcdef01234567']);
  assert.is(missing.code, 1);
  assert.match(missing.stderr, /no device "0123456789abcdef01234567".*\[device-not-found\]/);
});

it('admit --ek ek.pub admits a new device; one that does not answer ends stale and attest exits 1', async (ctx) => {
  const gw = ctx.gw!;
  gw.writePolicy({ admission: { mode: 'allowlist' }, rounds: { periodicMs: 60_000, deadlineMs: 2000 } });
  await eventually(() => gw.gateway.policy().admission.mode === 'allowlist', 'policy reloaded');
  const tools = await ToolsDevice.create({ software: [TOOLS_SW] });
  ctx.tools = tools;

  const refused = await tools.connect(gw.url, gw.ca);
  await tools.send(refused, tools.hello());
  const error = await refused.next();
  assert.is(error.t === 'error' && error.code, 'ek-not-admitted');
  await refused.close();

  // ek.pub as tpm2_createek wrote it (TPM2B_PUBLIC): the CLI hashes the TPMT_PUBLIC inside.
  const admitted = await cli(gw, ['admit', '--ek', join(tools.dir, 'ek.pub')]);
  assert.is(admitted.code, 0, admitted.stderr);
  const { ekHash } = deviceIdentity(tools.ek);
  assert.match(admitted.stdout, new RegExp(`^admitted: ${ekHash} \\(device id ${tools.id}\\)`));
  const release = await cli(gw, ['release', 'add', TOOLS_SW.name, TOOLS_SW.version, toHex(TOOLS_SW.digest)]);
  assert.is(release.code, 0, release.stderr);

  const conn = await tools.connect(gw.url, gw.ca);
  await tools.send(conn, tools.hello());
  const challenge = await conn.next();
  assert.is(challenge.t, 'challenge');
  await tools.answer(conn, challenge as never);
  const result = await conn.next();
  assert.is(result.t === 'result' && result.status, 'affirming');

  // The tools device now receives the batch's challenge and never answers it.
  const run = await cli(gw, ['attest', '--all']);
  assert.is(run.code, 1, run.stdout + run.stderr);
  assert.match(run.stdout, /^Batch [0-9a-f]{16}: 4 devices, done in /);
  assert.match(run.stdout, /^affirming {2}3$/m);
  assert.match(run.stdout, /^stale {6}1$/m);
  assert.match(run.stdout, new RegExp(`^${tools.id}  stale +stale +no evidence within 2000 ms$`, 'm'));
  assert.is((await conn.next()).t, 'challenge');
  const batchId = /^Batch ([0-9a-f]{16})/.exec(run.stdout)![1]!;
  const p = await api<BatchProgress>(gw, `/v1/batches/${batchId}`);
  assert.equal([p.done, p.stale, p.appraised.affirming, p.pending], [true, 1, 3, 0]);
  const silentRound = (await gw.gateway.store.round(p.results.find((r) => r.id === tools.id)!.round!))!;
  assert.ok(p.completedAt! >= silentRound.deadlineAt, 'complete at the deadline of the silent device');
  assert.is(gw.gateway.fleet.get(tools.id)?.posture, 'stale');
  await conn.close();
});

it.run();
