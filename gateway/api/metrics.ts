import { REFUSAL_REASONS, type RefusalReason } from '../broker/limits.ts';
import type { RoundRecord } from '../model.ts';
import { POSTURES, type Posture } from '../model.ts';
import type { AttestationObserver } from '../rounds/attestation.ts';
import type { StoreHealth } from '../store/store.ts';

// Prometheus text exposition (format 0.0.4) for the operator API's /metrics. Written out rather
// than taken from prom-client: a few metrics, no dependency, and the gauges are read from the
// fleet at scrape time instead of being kept in step with every change.

/** Upper bounds in seconds. Appraisal is CPU time (the goal is 0.15 ms); latency includes the TPM. */
const APPRAISAL_BUCKETS = [0.00005, 0.0001, 0.00015, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05];
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const BATCH_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

class Histogram {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = bounds.map(() => 0);
  }

  observe(v: number): void {
    // Cumulative buckets are computed at render; here each value lands in its first bucket.
    const i = this.bounds.findIndex((b) => v <= b);
    if (i >= 0) this.counts[i]!++;
    this.sum += v;
    this.count++;
  }

  render(name: string, help: string): string[] {
    const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} histogram`];
    let cumulative = 0;
    this.bounds.forEach((b, i) => {
      cumulative += this.counts[i]!;
      lines.push(`${name}_bucket{le="${b}"} ${cumulative}`);
    });
    lines.push(
      `${name}_bucket{le="+Inf"} ${this.count}`,
      `${name}_sum ${this.sum}`,
      `${name}_count ${this.count}`,
    );
    return lines;
  }
}

/** What a scrape reads from the live gateway. */
export interface FleetSnapshot {
  readonly connectedDevices: number;
  readonly postures: Iterable<Posture>;
  readonly openBatches: number;
  readonly store: StoreHealth;
}

const escapeLabel = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

/**
 * Counters and histograms fed by the attestation observer and the batch tracker. A round is
 * counted once, when it settles, under its result: `ok` for a clean appraisal, else its code.
 */
export class GatewayMetrics implements AttestationObserver {
  private readonly rounds = new Map<string, number>();
  private readonly appraisal = new Histogram(APPRAISAL_BUCKETS);
  private readonly latency = new Histogram(LATENCY_BUCKETS);
  private readonly batches = new Histogram(BATCH_BUCKETS);
  private readonly refusals = new Map<RefusalReason, number>(REFUSAL_REASONS.map((r) => [r, 0]));

  roundSettled(round: RoundRecord, appraisalMs?: number): void {
    // An appraised round without a code is `ok`, unless no claim could be made (`none`: an
    // enrolment the store could not record).
    const result =
      round.codes[0] ?? (round.state !== 'appraised' ? round.state : round.status === 'none' ? 'none' : 'ok');
    this.rounds.set(result, (this.rounds.get(result) ?? 0) + 1);
    if (appraisalMs !== undefined) this.appraisal.observe(appraisalMs / 1000);
    if (round.state === 'appraised' && round.appraisedAt !== undefined)
      this.latency.observe((round.appraisedAt - round.issuedAt) / 1000);
  }

  batchCompleted(durationMs: number): void {
    this.batches.observe(durationMs / 1000);
  }

  /** The broker refused something over a limit, quota, deadline or access rule. */
  refused(reason: RefusalReason): void {
    this.refusals.set(reason, (this.refusals.get(reason) ?? 0) + 1);
  }

  render(fleet: FleetSnapshot): string {
    const byPosture = new Map<Posture, number>(POSTURES.map((p) => [p, 0]));
    for (const p of fleet.postures) byPosture.set(p, (byPosture.get(p) ?? 0) + 1);
    const lines = [
      '# HELP vigil_connected_devices Devices with at least one live MQTT connection.',
      '# TYPE vigil_connected_devices gauge',
      `vigil_connected_devices ${fleet.connectedDevices}`,
      '# HELP vigil_devices Known devices by posture.',
      '# TYPE vigil_devices gauge',
      ...[...byPosture].map(([p, n]) => `vigil_devices{posture="${p}"} ${n}`),
      '# HELP vigil_rounds_total Settled attestation rounds by result: ok, or the result code.',
      '# TYPE vigil_rounds_total counter',
      ...[...this.rounds].sort().map(([r, n]) => `vigil_rounds_total{result="${escapeLabel(r)}"} ${n}`),
      ...this.appraisal.render(
        'vigil_appraisal_duration_seconds',
        'Gateway CPU time appraising one piece of evidence.',
      ),
      ...this.latency.render(
        'vigil_round_latency_seconds',
        'From challenge issued to evidence received, for appraised rounds.',
      ),
      ...this.batches.render(
        'vigil_batch_duration_seconds',
        'From an on-demand batch being started to its last round settling.',
      ),
      '# HELP vigil_batches_open On-demand batches with rounds still pending.',
      '# TYPE vigil_batches_open gauge',
      `vigil_batches_open ${fleet.openBatches}`,
      '# HELP vigil_store_writable 1 while the store commits, 0 from a failed commit (full disk, read-only) until one succeeds.',
      '# TYPE vigil_store_writable gauge',
      `vigil_store_writable ${fleet.store.writable ? 1 : 0}`,
      '# HELP vigil_store_queued_writes Writes waiting for a commit.',
      '# TYPE vigil_store_queued_writes gauge',
      `vigil_store_queued_writes ${fleet.store.queued}`,
      '# HELP vigil_store_dropped_writes_total History dropped because the store could not write and its queue was full.',
      '# TYPE vigil_store_dropped_writes_total counter',
      `vigil_store_dropped_writes_total ${fleet.store.dropped}`,
      '# HELP vigil_refusals_total Publishes, subscribes and connections refused by the broker, by reason (a quota, limit, deadline or access rule).',
      '# TYPE vigil_refusals_total counter',
      ...[...this.refusals].map(([r, n]) => `vigil_refusals_total{reason="${r}"} ${n}`),
    ];
    return `${lines.join('\n')}\n`;
  }
}
