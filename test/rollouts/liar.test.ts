import * as assert from 'uvu/assert';
import type { Report } from '../../shared/protocol/index.ts';
import { fromHex } from '../../shared/tpm/bytes.ts';
import { eventually } from '../support/operator.ts';
import type { Connected } from '../support/tools-device.ts';
import { ToolsDevice } from '../support/tools-device.ts';
import { APP, digestOf, phase, swarmSuite, V1, V2 } from './support.ts';

// A member that lies: a device built from tpm2-tools (no agent code) that answers every round
// honestly, its log showing the old tree, but reports `staged` and `activated` without fetching or
// switching anything. The swarm round after its activate shows the old digest: claim-mismatch, the
// rollout pauses, and the barrier never holds, even once every honest member converged.

const it = swarmSuite('a member that claims a release its quote does not show', 2);
const liarCtx: { liar?: ToolsDevice; conn?: Connected } = {};

it.before(async () => {
  liarCtx.liar = await ToolsDevice.create({
    software: [{ name: APP, version: '1.0.0', digest: fromHex(digestOf('1.0.0', V1)) }],
  });
});

it.after(async () => {
  await liarCtx.conn?.close();
  await liarCtx.liar?.stop();
});

/** Answers rounds honestly and rollout commands with lies, until told to stop. */
async function lie(
  liar: ToolsDevice,
  conn: Connected,
  told: string[],
  stop: { now: boolean },
): Promise<void> {
  const sw = { name: APP, version: '2.0.0' };
  while (!stop.now) {
    const m = await conn.next(200).catch(() => undefined);
    if (m === undefined) continue;
    if (m.t === 'challenge') await liar.answer(conn, m);
    else if (m.t === 'command') {
      told.push(m.op);
      const claim = (state: 'staged' | 'activated'): Report => ({ t: 'report', command: m.id, state, sw });
      if (m.op === 'stage') await liar.send(conn, claim('staged'));
      if (m.op === 'activate') await liar.send(conn, claim('activated'));
    }
  }
}

it('claim-mismatch pauses the rollout; the barrier never holds', async (ctx) => {
  const bed = ctx.bed!;
  const liar = liarCtx.liar!;
  const conn = await liar.connect(bed.gw.url, bed.gw.ca);
  liarCtx.conn = conn;
  await liar.send(conn, liar.hello());
  const told: string[] = [];
  const stop = { now: false };
  const lying = lie(liar, conn, told, stop);
  await eventually(
    () => bed.gw.gateway.fleet.get(liar.id)?.posture === 'affirming',
    'the liar attested',
    15_000,
  );

  bed.label([liar.id, ...ctx.members.map((m) => m.id)], 'line=c');
  const v2 = await bed.importRelease('2.0.0', 2, V2);
  const id = await bed.startRollout({
    swarm: 'line=c',
    release: 'app@2.0.0',
    waves: '100%',
    abort: '50%,min=3',
    timeouts: 'stage=20s,activate=20s',
  });

  const paused = await phase(bed, id, ['paused']);
  assert.is(paused.why, `claim-mismatch on ${liar.id}`);
  const member = paused.waves[0]!.members.find((m) => m.id === liar.id)!;
  assert.is(member.state, 'failed');
  assert.is(member.code, 'claim-mismatch');
  assert.match(
    member.detail!,
    new RegExp(`reported activated, but its quote shows ${digestOf('1.0.0', V1)} for app`),
  );
  assert.ok(told.includes('activate'), 'it was told to activate, and said it did');
  const round = (await bed.gw.gateway.store.recentRounds(liar.id, 10)).find((r) => r.reason === 'swarm');
  assert.is(round?.status, 'affirming', 'its quote is genuine: only its claim is false');

  const refused = await bed.refusedOperation(id);
  assert.equal([refused.status, refused.code], [409, 'barrier-not-held']);

  // The operator resumes: the honest members converge, the barrier still does not hold.
  const resumed = await bed.api('POST', `/v1/rollouts/${id}/resume`);
  assert.is(resumed.status, 200);
  const done = await phase(bed, id, ['completed']);
  for (const m of ctx.members)
    assert.is(done.waves[0]!.members.find((x) => x.id === m.id)!.state, 'converged');
  assert.not.ok(done.barrierDetail.holds);
  assert.equal(done.barrierDetail.missing, [liar.id]);
  assert.equal(
    done.digests.map((g) => [g.digest, g.members]),
    [
      [v2, ctx.members.map((m) => m.id).sort()],
      [digestOf('1.0.0', V1), [liar.id]],
    ],
  );
  const again = await bed.refusedOperation(id);
  assert.equal([again.status, again.code], [409, 'barrier-not-held']);
  assert.match(again.message, new RegExp(`2 converged and fresh of 3, 3 needed; missing: ${liar.id}`));
  // The operator's command exits non-zero and says who is missing.
  const cli = await bed.cli(['operate', id, 'recipe']);
  assert.is(cli.code, 1, cli.stdout);
  assert.match(
    cli.stderr,
    new RegExp(`the barrier does not hold: .*missing: ${liar.id} \\[barrier-not-held\\]`),
  );
  for (const m of ctx.members) assert.equal(m.operationRuns(), []);
  stop.now = true;
  await lying;
});

it.run();
