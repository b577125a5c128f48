import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { systemClock } from '../../shared/clock.ts';

// The real clock's timers against its own now(): deadlines are kept by timers and checked with
// now(), so a timer must never run before now() has reached the time it was asked for. Its timers
// do not hold the process open, so each test holds it open itself.

const held = async (body: () => Promise<void>) => {
  const hold = setInterval(() => {}, 1000);
  try {
    await body();
  } finally {
    clearInterval(hold);
  }
};

test('a timer never runs before now() reaches its due time', () =>
  held(async () => {
    const early: number[] = [];
    let ran = 0;
    await Promise.all(
      Array.from({ length: 40 }, async (_, chain) => {
        for (let i = 0; i < 12; i++) {
          const ms = 1 + ((chain * 7 + i * 3) % 17);
          const due = systemClock.now() + ms;
          await new Promise<void>((resolve) =>
            systemClock.after(ms, () => {
              if (systemClock.now() < due) early.push(due - systemClock.now());
              ran++;
              resolve();
            }),
          );
        }
      }),
    );
    assert.is(ran, 480);
    assert.equal(early, [], `${early.length} of ${ran} timers ran before their due time`);
  }));

test('a cancelled timer never runs, and a timer due now runs later, never synchronously', async () => {
  let cancelled = false;
  systemClock
    .after(5, () => {
      cancelled = true;
    })
    .cancel();
  let now = false;
  systemClock.after(-10, () => {
    now = true;
  });
  assert.is(now, false);
  await new Promise((r) => setTimeout(r, 30));
  assert.is(now, true);
  assert.is(cancelled, false);
});

test.run();
