import { createWriteStream, readFileSync, type WriteStream } from 'node:fs';
import { type SimFleet, startSimFleet } from '../test/equipment/sim/fleet.ts';
import { serve } from './ipc.ts';

// A shard of the simulated fleet in its own process: the bench spreads a large fleet over a few
// of these so that no single event loop holds ten thousand clients, and so that the gateway's
// process is measured alone.

let fleet: SimFleet | undefined;
let armed: Promise<number> | undefined;
/** The soak: every result a device received (`round status`), and when each device last got one. */
let record: WriteStream | undefined;
const lastResultAt = new Map<string, number>();
let url = '';
let ca: Buffer = Buffer.alloc(0);
const RECONNECT = { baseMs: 200, capMs: 3000 };

const now = () => performance.timeOrigin + performance.now();

serve({
  async start(args) {
    const a = args as {
      url: string;
      caPath: string;
      count: number;
      concurrency: number;
      seedPrefix: string;
      /** Reconnect after a drop (the soak), and append every result to this file. */
      reconnect?: boolean;
      record?: string;
    };
    const t0 = performance.now();
    url = a.url;
    ca = readFileSync(a.caPath);
    fleet = startSimFleet({
      url: a.url,
      ca,
      count: a.count,
      concurrency: a.concurrency,
      seedPrefix: a.seedPrefix,
      readyTimeoutMs: 600_000,
      ...(a.reconnect && { connect: { reconnect: RECONNECT } }),
      device: () => ({ keepResults: 1 }),
    });
    if (a.record) {
      record = createWriteStream(a.record, { flags: 'a' });
      for (const d of fleet.devices)
        d.on('result', (r) => {
          lastResultAt.set(d.id, Date.now());
          record!.write(`${Buffer.from(r.round).toString('hex')} ${r.status}\n`);
        });
    }
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
  /**
   * The soak's churn: `count` random devices lose their connection, half of them abruptly (the
   * socket destroyed: they reconnect by themselves), half by closing and coming back after up to
   * `downMs`.
   */
  churn(args) {
    const { count, downMs } = args as { count: number; downMs: number };
    const devices = fleet!.devices;
    for (let i = 0; i < count; i++) {
      const d = devices[Math.floor(Math.random() * devices.length)]!;
      if (i % 2 === 0) d.socket()?.destroy();
      else
        void d
          .close()
          .then(() =>
            setTimeout(
              () => void d.connect(url, ca, { reconnect: RECONNECT }).catch(() => {}),
              Math.random() * downMs,
            ),
          );
    }
    return count;
  },
  /** Devices connected now whose last result arrived within `withinMs`, with that result's status. */
  answering(args) {
    const { withinMs } = args as { withinMs: number };
    const since = Date.now() - withinMs;
    return fleet!.devices
      .filter((d) => d.connected && (lastResultAt.get(d.id) ?? 0) >= since)
      .map((d) => ({ id: d.id, status: d.lastResult?.status }));
  },
  counts: () => ({
    connected: fleet?.devices.filter((d) => d.connected).length ?? 0,
    results: fleet?.devices.reduce((n, d) => n + d.resultCount, 0) ?? 0,
    challenges: fleet?.devices.reduce((n, d) => n + d.challengeCount, 0) ?? 0,
  }),
  now,
  async close() {
    await fleet?.close();
    await new Promise<void>((resolve) => (record ? record.end(resolve) : resolve()));
    setImmediate(() => process.exit(0));
    return true;
  },
});
process.send?.({ id: 0, ok: true, value: 'ready' });
