import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Child, startChild } from './child.ts';
import { type DelayRelay, startDelayRelay } from './delay-relay.ts';
import { atMost, type Figure, info } from './figure.ts';
import { benchGatewayDir } from './gateway-dir.ts';
import { createNetnsPair, type NetnsPair } from './netns.ts';
import { freePort } from './ports.ts';
import { median } from './stats.ts';

// Figure 3: re-attestation on a live connection against reconnect + attestation, at 50 ms RTT,
// in the same run. The gateway runs in one network namespace, a sim device in another, netem
// delaying the veth between them. Both are timed at the device: live, from the moment the
// gateway is asked for a round (over local IPC, not through the delayed link) to the result
// arriving; reconnect, from a fresh TCP connect to the result of the round its hello starts.

const RTT_MS = 50;
const PORT = 8883;

export async function reattestFigures(o: { samples: number; log: (l: string) => void }): Promise<Figure[]> {
  const name = `re-attestation on a live connection / reconnect + attestation, ${RTT_MS} ms RTT`;
  let ns: NetnsPair | undefined;
  let relay: DelayRelay | undefined;
  let how: string;
  try {
    ns = createNetnsPair(RTT_MS);
    how = 'network namespaces, veth, netem delay 25 ms each way';
  } catch (e) {
    const why = `netem is not available here (${(e as Error).message})`;
    o.log(`  ${why}: measuring through a userspace delay relay on loopback instead`);
    how = `${why}; userspace relay delaying each chunk 25 ms each way and the first by one RTT more (the TCP handshake)`;
  }
  const dir = mkdtempSync(join(tmpdir(), 'vigil-bench-ns-'));
  let gateway: Child | undefined;
  let fleet: Child | undefined;
  try {
    const host = ns?.gatewayIp ?? '127.0.0.1';
    const port = ns ? PORT : await freePort();
    const gw = benchGatewayDir(dir, { host, port });
    gateway = await startChild('gateway-process.ts', [dir], ns ? { netns: ns.gatewayNs } : {});
    fleet = await startChild('fleet-process.ts', [], ns ? { netns: ns.clientNs } : {});
    if (!ns) relay = await startDelayRelay({ host, port }, RTT_MS);
    const url = ns ? `mqtts://${host}:${PORT}` : `mqtts://localhost:${relay!.port}`;
    const started = await fleet.call<{ ids: string[] }>('start', {
      url,
      caPath: gw.caPath,
      count: 1,
      concurrency: 1,
      seedPrefix: 'reattest',
    });
    const id = started.ids[0]!;
    const live: number[] = [];
    const reconnect: number[] = [];
    for (let i = 0; i < o.samples; i++) {
      await fleet.call('arm', { index: 0 });
      const t0 = await fleet.call<number>('now');
      await gateway.call('roundOne', { deviceId: id });
      const arrived = await fleet.call<number>('armedResult');
      live.push(arrived - t0);
      const r = await fleet.call<{ ms: number; status: string }>('reconnect', {
        index: 0,
        url,
        caPath: gw.caPath,
      });
      if (r.status !== 'affirming') throw new Error(`reconnect round: ${r.status}`);
      reconnect.push(r.ms);
    }
    const liveMs = median(live);
    const reconnectMs = median(reconnect);
    o.log(`  live ${liveMs.toFixed(1)} ms, reconnect ${reconnectMs.toFixed(1)} ms (median of ${o.samples})`);
    return [
      atMost(name, liveMs / reconnectMs, 'ratio', 0.5, { rttMs: RTT_MS, samples: o.samples, network: how }),
      info(`re-attestation on a live connection, ${RTT_MS} ms RTT`, liveMs, 'ms', {
        samples: live.map(Math.round),
      }),
      info(`reconnect + attestation, ${RTT_MS} ms RTT`, reconnectMs, 'ms', {
        samples: reconnect.map(Math.round),
      }),
    ];
  } finally {
    await fleet?.stop().catch(() => {});
    await gateway?.stop().catch(() => {});
    await relay?.close();
    ns?.remove();
    rmSync(dir, { recursive: true, force: true });
  }
}
