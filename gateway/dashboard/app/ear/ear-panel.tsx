import { useSignal } from '@preact/signals';
import { Fragment } from 'preact';
import { useEffect } from 'preact/hooks';
import type { EarView } from '../../../api/routes/rounds.ts';
import type { RoundView } from '../../../api/views.ts';
import { api, errorText } from '../api.ts';
import { dateTime } from '../format.ts';
import { toHex } from './base64url.ts';
import type { EarCheck, EarKey } from './verify-ear.ts';

// A round's EAR, decoded and checked in this browser, with the check's outcome first. The checking
// code (@noble/curves, the COSE and CBOR decoders) loads with the first check, not with the page.

let earKey: Promise<EarKey> | undefined;
function gatewayKey(): Promise<EarKey> {
  earKey ??= api<EarKey>('GET', 'v1/ear-key').catch((e: unknown) => {
    earKey = undefined;
    throw e;
  });
  return earKey;
}

type State = { readonly kind: 'checking' } | { readonly kind: 'error'; readonly text: string } | EarCheck;
const CHECKING: State = { kind: 'checking' };

export function EarPanel({ round, deviceId }: { round: RoundView; deviceId: string }) {
  // The outcome is held with the round it is for: until the effect has run for a new round, the
  // signal still holds the previous round's outcome, which must not be shown as this one's.
  const checked = useSignal<{ readonly round: string; readonly state: State } | null>(null);
  useEffect(() => {
    let current = true;
    checked.value = null;
    Promise.all([
      api<EarView>('GET', `v1/rounds/${round.id}/ear`),
      gatewayKey(),
      import('./verify-ear.ts'),
    ]).then(
      ([ear, key, { checkEar }]) => {
        if (current) checked.value = { round: round.id, state: checkEar(ear.cwt, key, round, deviceId) };
      },
      (e: unknown) => {
        if (current) checked.value = { round: round.id, state: { kind: 'error', text: errorText(e) } };
      },
    );
    return () => {
      current = false;
    };
  }, [round.id]);

  const s = checked.value?.round === round.id ? checked.value.state : CHECKING;
  if ('kind' in s)
    return (
      <div class="ear" data-ear-check={s.kind}>
        {s.kind === 'checking' ? <p class="muted">checking the EAR…</p> : <p class="error">{s.text}</p>}
      </div>
    );
  return (
    <div class={s.ok ? 'ear ear-ok' : 'ear ear-bad'} data-ear-check={s.ok ? 'verified' : 'failed'}>
      <p class="ear-verdict">
        {s.ok
          ? "✓ Signature verified in this browser (ES256 over the CWT, the gateway's EAR key)"
          : `✗ Not verified: ${s.reason}`}
      </p>
      {s.ok && s.mismatches.length > 0 && (
        <ul class="error">
          {s.mismatches.map((m) => (
            <li key={m}>{m}</li>
          ))}
        </ul>
      )}
      {s.ok && s.mismatches.length === 0 && <p class="muted">The signed claims match the round shown.</p>}
      {s.ear && <Claims ear={s.ear} kid={s.kid ?? ''} />}
    </div>
  );
}

function Claims({ ear, kid }: { ear: NonNullable<EarCheck['ear']>; kid: string }) {
  return (
    <dl class="claims">
      <dt>profile</dt>
      <dd>{ear.profile}</dd>
      <dt>issued</dt>
      <dd>{dateTime(ear.iat * 1000)}</dd>
      {ear.exp !== undefined && (
        <>
          <dt>expires</dt>
          <dd>{dateTime(ear.exp * 1000)}</dd>
        </>
      )}
      <dt>nonce</dt>
      <dd class="mono wrap">{toHex(ear.nonce)}</dd>
      <dt>verifier</dt>
      <dd>
        {ear.verifier.developer} {ear.verifier.build}
      </dd>
      <dt>key id</dt>
      <dd class="mono">{kid}</dd>
      {Object.entries(ear.submods).map(([id, a]) => (
        <Fragment key={id}>
          <dt>appraisal of</dt>
          <dd>
            <span class="mono">{id}</span>: <strong>{a.status}</strong>
            {a.codes && a.codes.length > 0 && <span> ({a.codes.join(', ')})</span>}
            <br />
            <span class="muted">policy {a.policyId}</span>
            <br />
            <span class="trust">
              {Object.entries(a.trust).map(([claim, value]) => (
                <span key={claim} class="claim">
                  {claim} {value}
                </span>
              ))}
            </span>
          </dd>
        </Fragment>
      ))}
    </dl>
  );
}
