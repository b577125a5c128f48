import type { ComponentChildren } from 'preact';
import type { OperationView } from '../../../rollouts/view.ts';
import { now } from '../clock.ts';
import { dateTime, fromNow } from '../format.ts';
import { href } from '../route.ts';
import { StateBadge } from '../ui/state-badge.tsx';
import { outcomeTone } from './tones.ts';

// The operations released behind the barrier, newest first: when each runs, its state (cancelled
// with the reasons when the barrier broke before its time), every member told and what it
// reported, and the operate token a third party checks with the gateway's EAR key.

export function OperationsCard({
  operations,
  children,
}: {
  operations: readonly OperationView[];
  /** The form releasing one (operators). */
  children?: ComponentChildren;
}) {
  return (
    <section class="card operations" aria-labelledby="operations-h">
      <h2 id="operations-h">Operations</h2>
      {children}
      {operations.length === 0 ? (
        <p class="muted">No operation released.</p>
      ) : (
        [...operations].reverse().map((o) => <Operation key={o.id} op={o} />)
      )}
    </section>
  );
}

function Operation({ op }: { op: OperationView }) {
  const t = now.value;
  return (
    <article class="operation" data-operation={op.id} data-state={op.state}>
      <header class="operation-head">
        <h3 class="op-name wrap">{op.name}</h3>
        <StateBadge state={op.state} tone={outcomeTone(op.state)} />
        <span class="muted">
          at {dateTime(op.at)} ({fromNow(op.at, t)}) · token valid until {dateTime(op.exp)}
        </span>
        <span class="muted mono">{op.id.slice(0, 12)}</span>
      </header>
      {op.reasons.length > 0 && (
        <ul class="reasons">
          {op.reasons.map((r) => (
            <li key={r} class="wrap">
              {r}
            </li>
          ))}
        </ul>
      )}
      <div class="table-wrap">
        <table class="results">
          <thead>
            <tr>
              <th>member</th>
              <th>result</th>
              <th>code</th>
              <th>detail</th>
            </tr>
          </thead>
          <tbody>
            {op.told.map((id) => {
              const r = op.results[id];
              return (
                <tr key={id} data-member={id} data-result={r?.state ?? 'pending'}>
                  <td>
                    <a class="mono" href={href({ page: 'device', id })}>
                      {id}
                    </a>
                  </td>
                  <td>
                    {r ? (
                      <StateBadge state={r.state} tone={outcomeTone(r.state)} />
                    ) : (
                      <span class="muted">pending</span>
                    )}
                  </td>
                  {r?.code ? (
                    <td>
                      <code class="code">{r.code}</code>
                    </td>
                  ) : (
                    <td class="muted none">—</td>
                  )}
                  <td class="detail">{r?.detail ?? ''}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      {op.token !== '' && (
        <details class="token">
          <summary>Operate token</summary>
          <p class="mono wrap token-hex">{op.token}</p>
          <p class="muted">
            A COSE_Sign1 by the gateway's EAR key (<a href="v1/ear-key">v1/ear-key</a>) over the swarm, the
            rollout, the operation, the release digest and the members: whatever the handler drives checks
            with it that the barrier held.
          </p>
        </details>
      )}
    </article>
  );
}
