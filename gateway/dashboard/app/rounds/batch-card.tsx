import { Fragment } from 'preact';
import type { BatchDeviceResult } from '../../../rounds/batches.ts';
import { now } from '../clock.ts';
import { clockTime, span } from '../format.ts';
import { href } from '../route.ts';
import { RoundOutcome } from '../ui/round-outcome.tsx';
import type { Watched } from './batch-watch.ts';

// One batch: what it was for, a bar of where its rounds stand, and every device that did not end
// affirming, with its code and the gateway's detail.

const PARTS = [
  ['affirming', 'affirming'],
  ['warning', 'warning'],
  ['contraindicated', 'contraindicated'],
  ['none', 'none'],
  ['stale', 'stale'],
  ['abandoned', 'abandoned'],
  ['unreachable', 'unreachable'],
  ['pending', 'pending'],
] as const;

function describe(selector: Readonly<Record<string, unknown>>): string {
  if (selector.all === true) return 'the whole fleet';
  if (typeof selector.label === 'string') return `label ${selector.label}`;
  if (Array.isArray(selector.ids))
    return selector.ids.length === 1 ? `device ${String(selector.ids[0])}` : `${selector.ids.length} devices`;
  return JSON.stringify(selector);
}

const failed = (r: BatchDeviceResult) => !(r.state === 'appraised' && r.status === 'affirming');

export function BatchCard({ watched: w, focus }: { watched: Watched; focus: boolean }) {
  const p = w.progress;
  const count = (k: (typeof PARTS)[number][0]) =>
    k === 'stale' || k === 'abandoned' || k === 'unreachable' || k === 'pending' ? p[k] : p.appraised[k];
  const total = Math.max(1, p.devices);
  const failures = p.results.filter(failed);
  const elapsed = (p.completedAt ?? now.value) - p.createdAt;
  return (
    <section class={focus ? 'card batch focus' : 'card batch'} data-batch={p.id} data-done={p.done}>
      <header class="batch-head">
        <h2>{describe(p.selector)}</h2>
        <span class="muted">
          started {clockTime(p.createdAt)} ·{' '}
          {p.done ? `done in ${span(elapsed)}` : `running ${span(elapsed)}`}
        </span>
        <a class="muted mono" href={href({ page: 'rounds', batch: p.id })}>
          {p.id}
        </a>
      </header>
      {w.error && <p class="error">{w.error}</p>}
      <div class="bar" role="img" aria-label={`${p.answered} of ${p.devices} answered`}>
        {PARTS.map(([k, cls]) =>
          count(k) > 0 ? (
            <span key={k} class={`bar-part status-${cls}`} style={{ flexGrow: count(k) / total }} />
          ) : null,
        )}
      </div>
      <dl class="batch-counts">
        <dt>devices</dt>
        <dd data-count="devices">{p.devices}</dd>
        {PARTS.map(([k]) => (
          <Fragment key={k}>
            <dt>{k}</dt>
            <dd data-count={k}>{count(k)}</dd>
          </Fragment>
        ))}
      </dl>
      {failures.length > 0 && (
        <>
          <h3>Not affirming ({failures.length})</h3>
          <div class="table-wrap">
            <table class="failures">
              <thead>
                <tr>
                  <th>device</th>
                  <th>outcome</th>
                  <th>detail</th>
                </tr>
              </thead>
              <tbody>
                {failures.slice(0, 200).map((r) => (
                  <tr key={`${r.id}-${r.round ?? ''}`} data-device={r.id}>
                    <td>
                      <a class="mono" href={href({ page: 'device', id: r.id })}>
                        {r.id}
                      </a>
                    </td>
                    <td>
                      <RoundOutcome round={r} />
                    </td>
                    <td class="detail">{r.detail ?? ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {failures.length > 200 && <p class="muted">and {failures.length - 200} more</p>}
        </>
      )}
    </section>
  );
}
