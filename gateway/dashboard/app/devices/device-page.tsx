import { useSignal } from '@preact/signals';
import { Fragment } from 'preact';
import { useEffect } from 'preact/hooks';
import type { DeviceDetailView, RoundView } from '../../../api/views.ts';
import type { BatchProgress } from '../../../rounds/batches.ts';
import { api, errorText } from '../api.ts';
import { now } from '../clock.ts';
import { EarPanel } from '../ear/ear-panel.tsx';
import { ago, dateTime, expiresIn } from '../format.ts';
import { liveLoad } from '../live.ts';
import { watchBatch } from '../rounds/batch-watch.ts';
import { go } from '../route.ts';
import { canOperate } from '../session.ts';
import { Codes } from '../ui/codes.tsx';
import { Labels } from '../ui/labels.tsx';
import { PostureBadge } from '../ui/posture-badge.tsx';
import { RoundOutcome } from '../ui/round-outcome.tsx';
import { PostureTimeline } from './timeline.tsx';

// One device: what it is and how it is connected, its posture over time, its rounds with their
// codes and details, and the EAR of a round checked in the browser. Reloaded shortly after any
// event about it.

const RELOAD_MS = 300;

/** What the page holds for one device id; held for another id, it is not shown. */
interface Loaded {
  readonly id: string;
  readonly detail: DeviceDetailView | null;
  readonly error: string | null;
}

export function DevicePage({ id }: { id: string }) {
  const loaded = useSignal<Loaded | null>(null);
  const earRound = useSignal<string | null>(null);

  useEffect(() => {
    loaded.value = null;
    earRound.value = null;
    return liveLoad({
      fetch: () => api<DeviceDetailView>('GET', `v1/devices/${encodeURIComponent(id)}?rounds=50&events=100`),
      apply: (d) => {
        loaded.value = { id, detail: d, error: null };
        earRound.value ??= d.rounds.find((r) => r.state === 'appraised')?.id ?? null;
      },
      failed: (e) => {
        loaded.value = { id, detail: loaded.peek()?.detail ?? null, error: errorText(e) };
      },
      matters: (e) => (e.kind === 'posture' ? e.notice.id : e.kind === 'round' ? e.device : undefined) === id,
      delayMs: RELOAD_MS,
    });
  }, [id]);

  // Until the effect above has run for a new id, the signals still hold the previous device.
  const shown = loaded.value?.id === id ? loaded.value : null;
  const error = shown?.error ?? null;
  const d = shown?.detail ?? null;
  if (error && !d)
    return (
      <main class="page">
        <p class="error">{error}</p>
      </main>
    );
  if (!d)
    return (
      <main class="page">
        <p class="muted">loading…</p>
      </main>
    );
  const dev = d.device;
  const t = now.value;
  return (
    <main class="page device-page" data-device={dev.id}>
      <header class="page-head">
        <h1 class="mono device-id">{dev.id}</h1>
        <PostureBadge posture={dev.posture} />
        {dev.reasons.length > 0 && <Codes codes={dev.reasons} />}
        {canOperate.value && <AttestButton id={dev.id} />}
      </header>
      {error && <p class="error">{error}</p>}
      <section class="card facts">
        <dl>
          <dt>expires</dt>
          <dd>{expiresIn(dev.expires, t)}</dd>
          <dt>connection</dt>
          <dd>
            {dev.connected
              ? `connected (${dev.connections} connection${dev.connections === 1 ? '' : 's'})`
              : 'not connected'}
          </dd>
          <dt>last seen</dt>
          <dd>
            {dateTime(dev.lastSeen)} ({ago(dev.lastSeen, t)})
          </dd>
          <dt>first seen</dt>
          <dd>{dateTime(dev.firstSeen)}</dd>
          <dt>attester</dt>
          <dd>
            {dev.attester}, agent {dev.agent}, {dev.enrolled ? 'AK enrolled' : 'not enrolled'}
          </dd>
          <dt>EK hash</dt>
          <dd class="mono wrap">{dev.ekHash}</dd>
          <dt>labels</dt>
          <dd>
            <Labels labels={dev.labels} />
          </dd>
          <dt>software</dt>
          <dd>
            {dev.software.length === 0 ? (
              <span class="muted">none reported</span>
            ) : (
              <ul class="software">
                {dev.software.map((s) => (
                  <li key={`${s.name}@${s.version}`}>
                    <span class="sw-name">{s.name}</span> <span class="sw-version">{s.version}</span>{' '}
                    <span class="mono muted" title={s.digest}>
                      {s.digest.slice(0, 12)}…
                    </span>
                  </li>
                ))}
              </ul>
            )}
          </dd>
        </dl>
      </section>
      <section class="card">
        <h2>Posture history</h2>
        <PostureTimeline events={d.events} now={t} />
      </section>
      <section class="card">
        <h2>Rounds</h2>
        <RoundsTable
          rounds={d.rounds}
          deviceId={dev.id}
          open={earRound.value}
          onOpen={(r) => {
            earRound.value = earRound.value === r ? null : r;
          }}
        />
      </section>
    </main>
  );
}

function AttestButton({ id }: { id: string }) {
  const error = useSignal<string | null>(null);
  return (
    <span class="head-action">
      <button
        type="button"
        class="primary"
        onClick={async () => {
          try {
            const p = await api<BatchProgress>('POST', 'v1/batches', { ids: [id] });
            watchBatch(p);
            go({ page: 'rounds', batch: p.id });
          } catch (e) {
            error.value = errorText(e);
          }
        }}
      >
        Attest now
      </button>
      {error.value && <span class="error">{error.value}</span>}
    </span>
  );
}

function RoundsTable(props: {
  rounds: readonly RoundView[];
  deviceId: string;
  open: string | null;
  onOpen: (round: string) => void;
}) {
  if (props.rounds.length === 0) return <p class="muted">No round yet.</p>;
  return (
    <div class="table-wrap">
      <table class="rounds">
        <thead>
          <tr>
            <th>issued</th>
            <th>reason</th>
            <th>outcome</th>
            <th>detail</th>
            <th>EAR</th>
          </tr>
        </thead>
        <tbody>
          {props.rounds.map((r) => (
            <Fragment key={r.id}>
              <tr data-round={r.id}>
                <td>{dateTime(r.issuedAt)}</td>
                <td>
                  {r.reason}
                  {r.activate ? ' (onboarding)' : ''}
                </td>
                <td>
                  <RoundOutcome round={r} />
                </td>
                <td class="detail">{r.detail ?? ''}</td>
                <td>
                  {r.state === 'appraised' && (
                    <button
                      type="button"
                      class="link"
                      aria-expanded={props.open === r.id}
                      onClick={() => props.onOpen(r.id)}
                    >
                      {props.open === r.id ? 'hide' : 'check'}
                    </button>
                  )}
                </td>
              </tr>
              {props.open === r.id && (
                <tr class="ear-row">
                  <td colSpan={5}>
                    <EarPanel round={r} deviceId={props.deviceId} />
                  </td>
                </tr>
              )}
            </Fragment>
          ))}
        </tbody>
      </table>
    </div>
  );
}
