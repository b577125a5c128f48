import type { WaveView } from '../../../rollouts/view.ts';
import { now } from '../clock.ts';
import { fromNow } from '../format.ts';
import { href } from '../route.ts';
import { StateBadge } from '../ui/state-badge.tsx';
import { memberTone } from './tones.ts';

// The waves in order, the trailing wave last (members back from absence, late joiners), each
// member with its state, code and the detail the device or the gateway gave.

export function waveName(wave: WaveView['wave']): string {
  return wave === 'trailing' ? 'Trailing wave' : wave === 0 ? 'Wave 0 (canary)' : `Wave ${wave}`;
}

export function WavesCard({ waves }: { waves: readonly WaveView[] }) {
  const t = now.value;
  return (
    <section class="card waves" aria-labelledby="waves-h">
      <h2 id="waves-h">Waves</h2>
      {waves.map((w) => (
        <div key={String(w.wave)} class="wave" data-wave={String(w.wave)} data-started={w.started}>
          <h3>
            {waveName(w.wave)}{' '}
            <span class="muted">
              {w.started ? `${w.converged}/${w.members.length} converged` : 'not started'}
            </span>
          </h3>
          <div class="table-wrap">
            <table class="members">
              <thead>
                <tr>
                  <th>device</th>
                  <th>state</th>
                  <th>code</th>
                  <th>posture</th>
                  <th>deadline</th>
                  <th>detail</th>
                </tr>
              </thead>
              <tbody>
                {w.members.map((m) => (
                  <tr key={m.id} data-member={m.id} data-state={m.state}>
                    <td>
                      <a class="mono" href={href({ page: 'device', id: m.id })}>
                        {m.id}
                      </a>
                    </td>
                    <td>
                      <StateBadge state={m.state} tone={memberTone(m.state)} />
                    </td>
                    {m.code ? (
                      <td>
                        <code class="code">{m.code}</code>
                      </td>
                    ) : (
                      <td class="muted none">—</td>
                    )}
                    <td>{m.fresh ? 'fresh' : 'not fresh'}</td>
                    {m.deadlineAt === null ? (
                      <td class="muted none">—</td>
                    ) : (
                      <td>{fromNow(m.deadlineAt, t)}</td>
                    )}
                    <td class="detail">{m.detail ?? ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </div>
      ))}
    </section>
  );
}
