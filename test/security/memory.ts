import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as assert from 'uvu/assert';

// Memory of the process under an abuse test (the gateway runs in it, beside the test's clients),
// measured after a full garbage collection so that only what is still held counts. Printed in the
// test's output; the assertion is a generous bound that a leak of the attack's size would break,
// never a tight or timing figure.

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

export interface Memory {
  readonly rss: number;
  readonly heapUsed: number;
  readonly arrayBuffers: number;
}

const MIB = 1024 * 1024;
const mib = (n: number) => (n / MIB).toFixed(1);

/**
 * Memory after full collections. V8 releases the memory of dead buffers on a background thread,
 * so the count is taken after a second collection a moment later.
 */
export async function memoryNow(): Promise<Memory> {
  gc();
  await new Promise((r) => setTimeout(r, 200));
  gc();
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, arrayBuffers: m.arrayBuffers };
}

/**
 * Prints before → after, and asserts that what is held (heap plus buffers) grew by less than
 * `boundMiB`; returns that growth in MiB. Waits a second first: buffers of traffic just handled
 * are released a moment after it.
 */
export async function reportMemory(what: string, before: Memory, boundMiB: number): Promise<number> {
  await new Promise((r) => setTimeout(r, 1000));
  const after = await memoryNow();
  const held = (m: Memory) => m.heapUsed + m.arrayBuffers;
  const grown = (held(after) - held(before)) / MIB;
  console.log(
    `  [memory] ${what}: rss ${mib(before.rss)} → ${mib(after.rss)} MiB, heap ${mib(before.heapUsed)} → ${mib(after.heapUsed)} MiB, buffers ${mib(before.arrayBuffers)} → ${mib(after.arrayBuffers)} MiB; held +${grown.toFixed(1)} MiB (bound ${boundMiB} MiB)`,
  );
  assert.ok(grown < boundMiB, `${what}: memory held grew ${grown.toFixed(1)} MiB, over ${boundMiB} MiB`);
  return grown;
}
