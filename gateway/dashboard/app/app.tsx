import { useEffect } from 'preact/hooks';
import { DevicePage } from './devices/device-page.tsx';
import { FleetPage } from './fleet/fleet-page.tsx';
import { liveState, startLive, stopLive } from './live.ts';
import { RolloutPage } from './rollouts/rollout-page.tsx';
import { RolloutsPage } from './rollouts/rollouts-page.tsx';
import { RoundsPage } from './rounds/rounds-page.tsx';
import { href, type Route, route } from './route.ts';
import { session, signOut } from './session.ts';
import { SignIn } from './sign-in.tsx';

export function App() {
  const s = session.value;
  if (s.kind === 'checking') return <p class="muted boot">…</p>;
  if (s.kind === 'signed-out') return <SignIn />;
  return <Shell role={s.role} />;
}

const LIVE_TEXT = {
  connecting: 'connecting…',
  live: 'live',
  polling: 'polling (no live feed)',
  reconnecting: 'reconnecting…',
} as const;

function Shell({ role }: { role: string }) {
  useEffect(() => {
    startLive();
    return stopLive;
  }, []);
  const r = route.value;
  return (
    <>
      <header class="top">
        <a class="brand" href="#/">
          Vigil
        </a>
        <nav class="tabs">
          <Tab to={{ page: 'fleet' }} active={r.page === 'fleet' || r.page === 'device'} text="Fleet" />
          <Tab to={{ page: 'rounds' }} active={r.page === 'rounds'} text="Rounds" />
          <Tab to={{ page: 'rollouts' }} active={r.page === 'rollouts'} text="Rollouts" />
        </nav>
        <span class={`live live-${liveState.value}`} data-live={liveState.value}>
          {LIVE_TEXT[liveState.value]}
        </span>
        <span class="role" data-role={role}>
          {role}
        </span>
        <button type="button" class="link" onClick={() => void signOut()}>
          Sign out
        </button>
      </header>
      <Page route={r} />
    </>
  );
}

function Tab({ to, active, text }: { to: Route; active: boolean; text: string }) {
  return (
    <a href={href(to)} class={active ? 'tab active' : 'tab'} aria-current={active ? 'page' : undefined}>
      {text}
    </a>
  );
}

function Page({ route: r }: { route: Route }) {
  switch (r.page) {
    case 'fleet':
      return <FleetPage />;
    case 'device':
      return <DevicePage id={r.id} />;
    case 'rounds':
      return <RoundsPage batch={r.batch} />;
    case 'rollouts':
      return r.id ? <RolloutPage id={r.id} /> : <RolloutsPage />;
  }
}
