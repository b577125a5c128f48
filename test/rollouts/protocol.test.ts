import { randomBytes } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { RolloutNotice } from '../../gateway/rollouts/view.ts';
import type { Report } from '../../shared/protocol/index.ts';
import { fromHex, toHex } from '../../shared/tpm/bytes.ts';
import { startTestAgent, type TestAgent } from '../e2e/support.ts';
import { expectError, expectMessage } from '../security/support.ts';
import { answerAffirmed } from '../security/testbed.ts';
import { connectOperator, eventually } from '../support/operator.ts';
import { type Connected, ToolsDevice } from '../support/tools-device.ts';
import { APP, type Bed, digestOf, phase, startBed, V1, V2 } from './support.ts';

// The rollout engine at its edges: reports only from attested connections and only about commands
// the gateway sent; a device that updates nothing answers `unsupported`; one rollout per swarm and
// per device; every refusal of the API with its code; the retained notice for back ends, which
// devices cannot read.

interface Ctx {
  bed?: Bed;
  tools?: ToolsDevice;
  conn?: Connected;
  plain?: TestAgent;
}
const it = suite<Ctx>('rollouts at the edges');

const sw = { name: APP, version: '1.0.0' };

it.before(async (ctx) => {
  ctx.bed = await startBed();
  const [tools, plain] = await Promise.all([
    ToolsDevice.create({
      software: [{ name: APP, version: '1.0.0', digest: fromHex(digestOf('1.0.0', V1)) }],
    }),
    startTestAgent(ctx.bed),
  ]);
  ctx.tools = tools;
  ctx.plain = plain;
  await ctx.bed.importRelease('2.0.0', 2, V2);
});

it.after(async (ctx) => {
  await ctx.conn?.close();
  await ctx.plain?.stop();
  await ctx.tools?.stop();
  await ctx.bed?.stop();
});

it('a report before the connection attested is unexpected; one on a command never sent is command-unknown', async (ctx) => {
  const tools = ctx.tools!;
  const conn = await tools.connect(ctx.bed!.url, ctx.bed!.gw.ca);
  ctx.conn = conn;
  await tools.send(conn, tools.hello());
  const challenge = expectMessage(await conn.next(), 'challenge');
  const report: Report = { t: 'report', command: new Uint8Array(randomBytes(16)), state: 'staged', sw };
  await tools.send(conn, report);
  assert.match(await expectError(conn, 'unexpected-message'), /report before this connection attested/);
  await answerAffirmed(tools, conn, challenge);
  await tools.send(conn, report);
  assert.match(
    await expectError(conn, 'command-unknown'),
    new RegExp(`command ${toHex(report.command)} was not sent to this device`),
  );
});

it('a device without update.json answers unsupported: the member fails with that code', async (ctx) => {
  const bed = ctx.bed!;
  const id = ctx.plain!.agent.deviceId;
  await eventually(() => bed.gw.gateway.fleet.get(id)?.posture === 'affirming', 'the agent attested');
  bed.label([id], 'line=u');
  const started = await bed.api<{ rollout: { id: string } }>('POST', '/v1/rollouts', {
    swarm: 'line=u',
    release: 'app@2.0.0',
  });
  assert.is(started.status, 201, JSON.stringify(started.json));
  const v = await phase(bed, started.json.rollout.id, ['aborted']);
  const m = v.waves[0]!.members[0]!;
  assert.equal([m.state, m.code], ['failed', 'unsupported']);
  assert.match(m.detail!, /no update\.json/);
});

it('one rollout per swarm and per device; pause, resume, cancel; every refusal with its code', async (ctx) => {
  const bed = ctx.bed!;
  const tools = ctx.tools!;
  const conn = ctx.conn!;
  const operator = await connectOperator(bed.url, bed.gw.ca, bed.gw.operatorToken);
  try {
    await operator.client.subscribeAsync('vigil/v1/fleet/rollouts/+');
    bed.label([tools.id], 'line=v');
    const post = (body: object) =>
      bed.api<{ rollout: { id: string }; error: { code: string; message: string } }>(
        'POST',
        '/v1/rollouts',
        body,
      );
    const first = await post({ swarm: 'line=v', release: 'app@2.0.0' });
    assert.is(first.status, 201);
    const id = first.json.rollout.id;
    const stage = expectMessage(await conn.next(), 'command');
    assert.equal([stage.op, stage.rollout], ['stage', id]);

    const refusals: [object, number, string, RegExp][] = [
      [
        { swarm: 'line=v', release: 'app@2.0.0' },
        409,
        'rollout-conflict',
        /has rollout r-.*one rollout per swarm/,
      ],
      [{ swarm: 'line=w', release: 'app@9.9.9' }, 404, 'no-match', /no device has label line=w/],
      [
        { swarm: 'line=u', release: 'app@9.9.9' },
        404,
        'release-not-found',
        /no imported release app 9\.9\.9/,
      ],
      [{ swarm: 'line=u', release: 'app' }, 400, 'bad-rollout', /NAME@VERSION/],
      [
        { swarm: 'line=u', release: 'app@2.0.0', waves: '0' },
        400,
        'bad-rollout',
        /"waves": "0" is neither a count/,
      ],
      [{ swarm: 'line=u', release: 'app@2.0.0', abort: 'half' }, 400, 'bad-rollout', /P% or P%,min=N/],
      [
        { swarm: 'line=u', release: 'app@2.0.0', timeouts: 'warp=1s' },
        400,
        'bad-rollout',
        /unknown step "warp"/,
      ],
      [{ swarm: 'line=u', release: 'app@2.0.0', barrier: 'most' }, 400, 'bad-rollout', /nor "all"/],
      [{ swarm: 'line=u', release: 'app@2.0.0', required: ['x'] }, 400, 'bad-rollout', /device ids/],
      [{ swarm: 'line=u', release: 'app@2.0.0', wave: '1' }, 400, 'bad-request', /unknown field "wave"/],
      [{ swarm: 'nolabel', release: 'app@2.0.0' }, 400, 'bad-selector', /expected KEY=VALUE/],
    ];
    for (const [body, status, code, message] of refusals) {
      const r = await post(body);
      assert.is(r.status, status, JSON.stringify(body));
      assert.is(r.json.error.code, code, JSON.stringify(r.json));
      assert.match(r.json.error.message, message);
    }
    // The same device under another label is still held by the first rollout.
    const d = bed.gw.gateway.fleet.get(tools.id)!;
    bed.gw.gateway.fleet.save({ ...d, labels: { ...d.labels, other: 'x' } });
    const overlap = await post({ swarm: 'other=x', release: 'app@2.0.0' });
    assert.is(overlap.json.error.code, 'rollout-conflict');
    assert.match(overlap.json.error.message, new RegExp(`${tools.id} is a member of rollout ${id}`));

    const act = (action: string) =>
      bed.api<{ rollout: { phase: string }; error: { code: string; message: string } }>(
        'POST',
        `/v1/rollouts/${id}/${action}`,
      );
    assert.is((await act('pause')).json.rollout.phase, 'paused');
    const twice = await act('pause');
    assert.equal([twice.status, twice.json.error.code], [409, 'rollout-refused']);
    assert.match(twice.json.error.message, /pause r-[0-9a-f]+: the rollout is paused, not running/);
    assert.is((await act('resume')).json.rollout.phase, 'running');
    assert.equal((await act('commit')).json.error.code, 'rollout-refused');
    assert.is((await act('warp')).status, 404);
    assert.is((await act('cancel')).json.rollout.phase, 'cancelled');
    const cancel = expectMessage(await conn.next(), 'command');
    assert.equal([cancel.op, cancel.op === 'cancel' && toHex(cancel.command)], ['cancel', toHex(stage.id)]);
    await tools.send(conn, { t: 'report', command: stage.id, state: 'cancelled', sw });
    await eventually(async () => (await bed.rollout(id)).inflight === 0, 'the cancel answered');
    const unknown = await bed.api<{ error: { code: string } }>('GET', '/v1/rollouts/r-000000000000');
    assert.equal([unknown.status, unknown.json.error.code], [404, 'rollout-not-found']);

    // Back ends read each rollout's notice, retained; a device cannot subscribe to it.
    await eventually(
      () =>
        operator.received.some((m) => {
          const n = JSON.parse(m.payload.toString()) as RolloutNotice;
          return m.topic === `vigil/v1/fleet/rollouts/${id}` && n.phase === 'cancelled' && n.id === id;
        }),
      'the notice of the cancelled rollout',
    );
    assert.is(await conn.subscribe('vigil/v1/fleet/rollouts/+'), 128);
    const listed = await bed.api<{ rollouts: RolloutNotice[] }>('GET', '/v1/rollouts');
    assert.ok(listed.json.rollouts.some((r) => r.id === id && r.phase === 'cancelled'));
    // Cancelled: the swarm is free for another rollout.
    const next = await post({ swarm: 'line=v', release: 'app@2.0.0' });
    assert.is(next.status, 201);
    // A device labelled into the swarm now joins it at its next good round, in the trailing wave,
    // once the aborted rollout that held it is cancelled.
    const late = ctx.plain!.agent.deviceId;
    const aborted = (await bed.api<{ rollouts: RolloutNotice[] }>('GET', '/v1/rollouts')).json.rollouts.find(
      (r) => r.swarm === 'line=u',
    )!;
    assert.is(aborted.phase, 'aborted');
    assert.is((await bed.api('POST', `/v1/rollouts/${aborted.id}/cancel`)).status, 200);
    const p = bed.gw.gateway.fleet.get(late)!;
    bed.gw.gateway.fleet.save({ ...p, labels: { ...p.labels, line: 'v' } });
    assert.is((await bed.api('POST', '/v1/batches', { ids: [late] })).status, 201);
    await eventually(async () => {
      const v = await bed.rollout(next.json.rollout.id);
      const m = v.waves.find((w) => w.wave === 'trailing')?.members[0];
      return m?.id === late && m.code === 'unsupported';
    }, 'the late joiner was staged, and said it updates nothing');
  } finally {
    await operator.close();
  }
});

it.run();
