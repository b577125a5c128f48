import { writeHeapSnapshot } from 'node:v8';
import pino from 'pino';
import { startGateway } from '../gateway/gateway.ts';
import type { RoundRecord } from '../gateway/model.ts';
import { serve } from './ipc.ts';
import { phaseProfiler } from './phase-profile.ts';
import { inSlices } from './slices.ts';
import { percentile } from './stats.ts';

// The gateway alone in its own process, so the bench reads its CPU and RSS without the fleet's.
// Driven over IPC: `round` starts an on-demand round on every attested connection, in slices (so
// early evidence is appraised while later challenges go out), and answers when the last one
// settled, timed inside the gateway (first challenge issued to last appraisal).

const dir = process.argv[2];
if (!dir) throw new Error('usage: gateway-process.ts GATEWAY_DIR');

interface Batch {
  readonly id: string;
  expected: number;
  settled: number;
  failed: number;
  readonly appraisalMs: number[];
  lastAt: number;
  earBytes: number;
  done?: () => void;
}
const batches = new Map<string, Batch>();
/** Rounds the bench waits on one by one (figure 3): round id → resolve. */
const single = new Map<string, (r: RoundRecord) => void>();

const threads = process.env.VIGIL_BENCH_CRYPTO_THREADS;
const gateway = await startGateway({
  dir,
  logger: pino({ level: process.env.VIGIL_BENCH_LOG ?? 'error' }),
  // The gateway's default unless the bench is told otherwise (to compare with and without).
  ...(threads !== undefined && { cryptoThreads: Number(threads) }),
  observe: {
    roundSettled(record, appraisalMs) {
      single.get(record.id)?.(record);
      single.delete(record.id);
      const b = record.batchId === undefined ? undefined : batches.get(record.batchId);
      if (!b) return;
      b.settled++;
      if (record.state !== 'appraised' || record.status !== 'affirming') b.failed++;
      if (appraisalMs !== undefined) b.appraisalMs.push(appraisalMs);
      if (record.ear) b.earBytes = record.ear.length;
      b.lastAt = performance.now();
      if (b.settled === b.expected) b.done?.();
    },
  },
});

const attestedSessions = () =>
  [...gateway.connections.all()].filter((s) => s.hello && !s.closed && s.attested);

serve({
  port: () => gateway.mqttPort,
  stats: () => ({
    sessions: [...gateway.connections.all()].length,
    attested: attestedSessions().length,
    cpu: process.cpuUsage(),
    mem: process.memoryUsage(),
  }),
  gc: () => {
    (globalThis as { gc?: () => void }).gc?.();
    return true;
  },
  async round(args) {
    const { batchId, slice = 256 } = args as { batchId: string; slice?: number };
    const sessions = attestedSessions();
    // expected counts up as rounds are issued; the batch is done once all are issued and settled.
    let issuing = true;
    const b: Batch = {
      id: batchId,
      expected: 0,
      settled: 0,
      failed: 0,
      appraisalMs: [],
      lastAt: 0,
      earBytes: 0,
    };
    batches.set(batchId, b);
    const done = new Promise<void>((resolve) => {
      b.done = () => {
        if (!issuing) resolve();
      };
    });
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await inSlices(sessions, slice, (s) => {
      if (gateway.attestation.start(s, 'on-demand', batchId) !== undefined) b.expected++;
    });
    issuing = false;
    const issuedMs = performance.now() - t0;
    if (b.expected > 0 && b.settled < b.expected) await done;
    const cpu = process.cpuUsage(cpu0);
    batches.delete(batchId);
    const sorted = b.appraisalMs.sort((x, y) => x - y);
    return {
      devices: b.expected,
      failed: b.failed,
      issuedMs,
      allAppraisedMs: b.lastAt - t0,
      cpuS: (cpu.user + cpu.system) / 1e6,
      appraisalP50Ms: percentile(sorted, 0.5),
      appraisalP99Ms: percentile(sorted, 0.99),
      earBytes: b.earBytes,
      // A pool whose workers never answered runs everything on the main thread: say so.
      cryptoThreads: { configured: gateway.crypto.threads, answering: gateway.crypto.answering },
    };
  },
  /** Starts an on-demand round on a device's newest connection; resolves when it settled. */
  async roundOne(args) {
    const { deviceId } = args as { deviceId: string };
    const session = gateway.connections.of(deviceId).at(-1);
    if (!session) throw new Error(`device ${deviceId} has no connection`);
    const t0 = performance.now();
    let id: string | undefined;
    const settled = new Promise<RoundRecord>((resolve) => {
      id = gateway.attestation.start(session, 'on-demand')?.id;
      if (id) single.set(id, resolve);
    });
    if (!id) throw new Error(`device ${deviceId}: no round could be started`);
    const r = await settled;
    return { ms: performance.now() - t0, status: r.status ?? r.state };
  },
  ...phaseProfiler(),
  /** A heap snapshot (what the per-connection JS memory is made of). */
  heapSnapshot(args) {
    (globalThis as { gc?: () => void }).gc?.();
    return writeHeapSnapshot((args as { path: string }).path);
  },
  async close() {
    await gateway.close();
    setImmediate(() => process.exit(0));
    return true;
  },
});
process.send?.({ id: 0, ok: true, value: 'ready' });
