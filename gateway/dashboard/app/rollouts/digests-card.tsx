import type { RolloutView } from '../../../rollouts/view.ts';
import { href } from '../route.ts';

// The members grouped by what their last appraised quote showed for the release's software: the
// gateway's evidence, not what the devices said. The group on the target digest comes first.

export function DigestsCard({ rollout: v }: { rollout: RolloutView }) {
  return (
    <section class="card digests" aria-labelledby="digests-h">
      <h2 id="digests-h">Members by measured digest</h2>
      <p class="muted">
        What the last quote of each member shows for <span class="sw-name">{v.release.name}</span>.
      </p>
      <div class="table-wrap">
        <table class="digest-table">
          <thead>
            <tr>
              <th>digest</th>
              <th>version</th>
              <th>members</th>
            </tr>
          </thead>
          <tbody>
            {v.digests.map((g) => (
              <tr
                key={g.digest ?? 'none'}
                class={g.target ? 'target' : undefined}
                data-digest={g.digest ?? 'none'}
                data-target={g.target}
              >
                <td>
                  {g.digest === null ? (
                    <span class="muted">none shown</span>
                  ) : (
                    <span class="mono" title={g.digest}>
                      {g.digest.slice(0, 16)}…
                    </span>
                  )}
                  {g.target && <span class="badge tone-good target-badge">target</span>}
                </td>
                <td>{g.version ?? <span class="muted">?</span>}</td>
                <td>
                  <span class="group-count">{g.members.length}</span>
                  <ul class="id-list">
                    {g.members.map((id) => (
                      <li key={id} data-member={id}>
                        <a class="mono" href={href({ page: 'device', id })}>
                          {id}
                        </a>
                      </li>
                    ))}
                  </ul>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
