import pino from 'pino';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RolloutError } from '../../gateway/rollouts/errors.ts';
import type { PeerAsk } from '../../gateway/rollouts/peers.ts';
import { ControlBus } from '../../gateway/scale/bus.ts';
import { Claims } from '../../gateway/scale/claims.ts';
import { Holdings } from '../../gateway/scale/holdings.ts';
import type { BusMessage } from '../../gateway/scale/messages.ts';
import { ASK_TIMEOUT_MS, RolloutBridge } from '../../gateway/scale/rollout-bridge.ts';
import { systemClock, systemRandom } from '../../shared/clock.ts';
import { FakeClock } from '../support/fake-clock.ts';
import { eventually } from '../support/operator.ts';
import { collectProcessFailures } from '../support/process-failures.ts';
import { startRedis } from '../support/redis.ts';

// The control bus against a real Redis that is away at start, comes, goes and comes back empty:
// the gateway side never crashes, reconnects by itself, gets its subscriptions back, and notices
// that the claims are gone.

const log = pino({ level: process.env.VIGIL_TEST_LOG ?? 'silent' });

test('absent at start, then up, down and up again: no crash, messages flow whenever it is up', async () => {
  const failures = collectProcessFailures({ uncaughtExceptions: true });
  const redis = await startRedis();
  await redis.stop();
  const a = new ControlBus({ url: redis.url, gatewayId: 'gw-a', log });
  const b = new ControlBus({ url: redis.url, gatewayId: 'gw-b', log });
  const heard: BusMessage[] = [];
  let ups = 0;
  b.on('policy', (m) => heard.push(m));
  b.onUp(() => ups++);
  try {
    a.start();
    b.start();
    await new Promise((r) => setTimeout(r, 300));
    assert.not.ok(a.up);
    assert.is(
      await a.toFleet({ t: 'policy', from: 'gw-a' }),
      false,
      'publishing without Redis: false, no throw',
    );

    await redis.start();
    await eventually(() => a.up && b.up, 'both connect once Redis is there', 10_000);
    assert.is(ups, 1);
    await eventually(async () => {
      await a.toFleet({ t: 'policy', from: 'gw-a' });
      return heard.length > 0;
    }, 'a message reaches the other gateway');

    await redis.stop();
    await eventually(() => !a.up && !b.up, 'both notice Redis is gone');
    assert.is(await a.toGateway('gw-b', { t: 'policy', from: 'gw-a' }), false);

    await redis.start();
    await eventually(() => a.up && b.up, 'both reconnect by themselves', 15_000);
    assert.is(ups, 2, 'onUp once per coming back');
    const before = heard.length;
    await eventually(async () => {
      await a.toGateway('gw-b', { t: 'policy', from: 'gw-a' });
      return heard.length > before;
    }, 'subscriptions are back after the reconnect');
    const once: BusMessage[] = [];
    b.on('answered', (m) => once.push(m));
    await a.toFleet({ t: 'answered', from: 'gw-a', batch: 'once' });
    await eventually(() => once.length > 0, 'delivered');
    await new Promise((r) => setTimeout(r, 200));
    assert.is(once.length, 1, 'delivered once, not once per subscription attempt');
    assert.equal(failures.caught, [], 'no unhandled error or rejection');
  } finally {
    failures.stop();
    await a.close();
    await b.close();
    await redis.close();
  }
});

test('claims: taken over by the newest attested connection, refreshed, released only by their holder', async () => {
  const redis = await startRedis();
  const a = new ControlBus({ url: redis.url, gatewayId: 'gw-a', log });
  a.start();
  try {
    await eventually(() => a.up, 'bus up');
    const gw1 = new Claims(a.commands, 'gw1', 300);
    const gw2 = new Claims(a.commands, 'gw2', 300);
    const id = 'ab'.repeat(12);
    assert.is(await gw1.take(id), null);
    assert.is(await gw2.holder(id), 'gw1');
    assert.is(await gw2.take(id), 'gw1', 'the previous holder is named, to be told');
    assert.equal(await gw1.refresh([id]), [id], 'gw1 learns it lost the device');
    await gw1.release(id);
    assert.is(await gw1.holder(id), 'gw2', 'a release by a gateway that lost the claim changes nothing');
    await new Promise((r) => setTimeout(r, 400));
    assert.is(await gw1.holder(id), null, 'not refreshed: lapsed');
    assert.equal(await gw2.refresh([id]), [], 'a lapsed claim nobody took is claimed again');
    assert.is(await gw1.holder(id), 'gw2');
    await gw2.release(id);
    assert.is(await gw1.holder(id), null);
  } finally {
    await a.close();
    await redis.close();
  }
});

test('Redis back without its keys: new connections wait one claim expiry while claims are made again', async () => {
  const redis = await startRedis();
  const bus = new ControlBus({ url: redis.url, gatewayId: 'gw1', log });
  const holdings = new Holdings({
    me: 'gw1',
    claims: new Claims(bus.commands, 'gw1', 1000),
    bus,
    connections: () => undefined,
    claimTtlMs: 1000,
    clock: systemClock,
    random: systemRandom,
    log,
  });
  bus.onUp(() => void holdings.busUp());
  bus.start();
  const id = 'cd'.repeat(12);
  try {
    await eventually(
      () => bus.up && !holdings.holdingOff(Date.now()),
      'admitting after the first hold-off',
      5000,
    );
    holdings.attested(id);
    await eventually(async () => (await bus.commands.get(`vigil:claim:${id}`)) === 'gw1', 'claimed');
    await redis.stop();
    await redis.start();
    await eventually(() => bus.up, 'reconnected', 15_000);
    const refusal = await holdings.admit('ef'.repeat(12));
    assert.is(refusal?.returnCode, 3, 'a new connection waits');
    await eventually(async () => (await bus.commands.get(`vigil:claim:${id}`)) === 'gw1', 'claimed again');
    await eventually(
      async () => (await holdings.admit('ef'.repeat(12))) === undefined,
      'admitting again',
      5000,
    );
  } finally {
    await holdings.close();
    await bus.close();
    await redis.close();
  }
});

test('a request to a rollout’s owner: answered over the bus; unreachable, with the reason, when it cannot be', async () => {
  const redis = await startRedis();
  const clock = new FakeClock();
  const bridge = (me: string, bus: ControlBus) =>
    new RolloutBridge({
      me,
      bus,
      claims: new Claims(bus.commands, me, 1500),
      live: () => new Set(['gw-a', 'gw-b']),
      holdingOff: () => false,
      claimTtlMs: 1500,
      clock,
      random: systemRandom,
      log,
    });
  const [busA, busB] = [
    new ControlBus({ url: redis.url, gatewayId: 'gw-a', log }),
    new ControlBus({ url: redis.url, gatewayId: 'gw-b', log }),
  ];
  const [asker, owner] = [bridge('gw-a', busA), bridge('gw-b', busB)];
  const asked: PeerAsk[] = [];
  owner.serve({
    ask: async (_from, ask) => {
      asked.push(ask);
      return ask.kind === 'act' && ask.action === 'pause'
        ? { ok: true }
        : { ok: false, code: 'rollout-refused', message: 'the rollout is completed, not running' };
    },
    report: () => {},
    resend: () => {},
    left: () => {},
  });
  busA.start();
  busB.start();
  try {
    await eventually(() => busA.up && busB.up, 'both up');
    await eventually(async () => {
      const answer = await asker
        .ask('gw-b', { kind: 'act', rollout: 'r-1', action: 'pause' })
        .catch(() => undefined);
      return answer?.ok === true;
    }, 'the owner answers');
    assert.equal(await asker.ask('gw-b', { kind: 'act', rollout: 'r-1', action: 'resume' }), {
      ok: false,
      code: 'rollout-refused',
      message: 'the rollout is completed, not running',
    });
    // Nobody listens for gw-c: no answer, and the wait ends on the clock.
    const silent = asker.ask('gw-c', { kind: 'act', rollout: 'r-2', action: 'pause' }).then(
      () => 'answered',
      (e: RolloutError) => `${e.code}: ${e.message}`,
    );
    await new Promise((r) => setTimeout(r, 100));
    clock.advance(ASK_TIMEOUT_MS);
    assert.match(
      await silent,
      /^owner-unreachable: rollout r-2 runs on gateway gw-c, which did not answer within 10000 ms/,
    );
    await redis.stop();
    await eventually(() => !busA.up, 'the bus is down');
    const down = await asker.ask('gw-b', { kind: 'act', rollout: 'r-1', action: 'pause' }).then(
      () => 'answered',
      (e: RolloutError) => `${e.code}: ${e.message}`,
    );
    assert.match(down, /^owner-unreachable: .*the control bus \(Redis\) is unreachable/);
  } finally {
    asker.close();
    owner.close();
    await busA.close();
    await busB.close();
    await redis.close();
  }
});

test.run();
