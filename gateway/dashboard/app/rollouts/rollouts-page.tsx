// Rollouts: where a swarm's move to a new attested version will be followed and its coordinated
// operation released. Nothing feeds this page yet (rollouts come with a later gateway); its
// sections are the ones a rollout will fill: the waves in order, the members grouped by the
// software digest their quotes measured, the barrier (every member attested the target digest),
// and the operation it releases.

export function RolloutsPage() {
  return (
    <main class="page rollouts-page">
      <header class="page-head">
        <h1>Rollouts</h1>
        <p class="muted">No rollout yet: this gateway version does not run rollouts.</p>
      </header>
      <div class="rollout-grid">
        <section class="card waves" aria-labelledby="waves-h">
          <h2 id="waves-h">Waves</h2>
          <p class="muted">
            Each wave's devices, its target release, and whether every member has attested it.
          </p>
          <ol class="wave-list empty-list">
            <li class="muted">no wave</li>
          </ol>
        </section>
        <section class="card members" aria-labelledby="members-h">
          <h2 id="members-h">Members by measured digest</h2>
          <p class="muted">What each member's quote shows it runs, grouped by software digest.</p>
          <table>
            <thead>
              <tr>
                <th>digest</th>
                <th>release</th>
                <th>devices</th>
              </tr>
            </thead>
            <tbody>
              <tr>
                <td colSpan={3} class="muted">
                  no member
                </td>
              </tr>
            </tbody>
          </table>
        </section>
        <section class="card barrier" aria-labelledby="barrier-h">
          <h2 id="barrier-h">Barrier</h2>
          <p>
            <span class="badge barrier-idle">not armed</span>
          </p>
          <p class="muted">It holds when every member has attested the target digest, and not before.</p>
        </section>
        <section class="card operate" aria-labelledby="operate-h">
          <h2 id="operate-h">Operate</h2>
          <button type="button" class="primary" disabled>
            Release the operation
          </button>
          <p class="muted">Enabled once the barrier holds.</p>
        </section>
      </div>
    </main>
  );
}
