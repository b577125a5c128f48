import { readFileSync } from 'node:fs';
import { type SimFleet, startSimFleet } from '../test/equipment/sim/fleet.ts';
import { serve } from './ipc.ts';
import { phaseProfiler } from './phase-profile.ts';

// A shard of the simulated fleet in its own process: the bench spreads a large fleet over a few
// of these so that no single event loop holds ten thousand clients, and so that the gateway's
// process is measured alone.

let fleet: SimFleet | undefined;
let armed: Promise<number> | undefined;

const now = () => performance.timeOrigin + performance.now();

serve({
  async start(args) {
    const a = args as { url: string; caPath: string; count: number; concurrency: number; seedPrefix: string };
    const t0 = performance.now();
    fleet = startSimFleet({
      url: a.url,
      ca: readFileSync(a.caPath),
      count: a.count,
      concurrency: a.concurrency,
      seedPrefix: a.seedPrefix,
      readyTimeoutMs: 600_000,
    });
    await fleet.ready;
    return { ms: performance.now() - t0, refused: fleet.refused.length, ids: fleet.devices.map((d) => d.id) };
  },
  stats: () => ({ mem: process.memoryUsage(), cpu: process.cpuUsage() }),
  /** Resolves when every device has at least `n` results. */
  async waitResults(args) {
    const { n, timeoutMs } = args as { n: number; timeoutMs: number };
    const deadline = Date.now() + timeoutMs;
    while (fleet?.devices.some((d) => d.resultCount < n)) {
      if (Date.now() > deadline) {
        const behind = fleet.devices.filter((d) => d.resultCount < n).length;
        throw new Error(`${behind} devices have fewer than ${n} results after ${timeoutMs} ms`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    return true;
  },
  /** Arms a wait for device i's next result; `armedResult` gives its wall-clock arrival time. */
  arm(args) {
    const d = fleet!.devices[(args as { index: number }).index]!;
    armed = d.nextResult(30_000).then(() => now());
    return true;
  },
  armedResult: () => armed,
  /** Closes device i's connection, then times a fresh connect until its result arrives. */
  async reconnect(args) {
    const d = fleet!.devices[(args as { index: number; url: string; caPath: string }).index]!;
    const { url, caPath } = args as { url: string; caPath: string };
    const ca = readFileSync(caPath);
    await d.close();
    const t0 = performance.now();
    const result = d.nextResult(30_000);
    await d.connect(url, ca);
    const r = await result;
    return { ms: performance.now() - t0, status: r.status };
  },
  now,
  ...phaseProfiler(),
  async close() {
    await fleet?.close();
    setImmediate(() => process.exit(0));
    return true;
  },
});
process.send?.({ id: 0, ok: true, value: 'ready' });
