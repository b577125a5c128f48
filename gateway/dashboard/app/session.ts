import { computed, signal } from '@preact/signals';
import type { Role } from '../../api/auth.ts';
import type { SessionView } from '../dashboard.ts';
import { ApiFailure, api, errorText, onSignedOut, setCsrf } from './api.ts';

// Who is signed in. The token typed into the sign-in form goes to the gateway once, in exchange
// for an HttpOnly session cookie; the page keeps only the role and the session's CSRF token.

export type SessionState =
  | { readonly kind: 'checking' }
  | { readonly kind: 'signed-out'; readonly error?: string }
  | { readonly kind: 'signed-in'; readonly role: Role };

export const session = signal<SessionState>({ kind: 'checking' });

/** Operators may trigger rounds; viewers only watch (the gateway refuses them anyway). */
export const canOperate = computed(
  () => session.value.kind === 'signed-in' && session.value.role === 'operator',
);

function signedIn(s: SessionView): void {
  setCsrf(s.csrf);
  session.value = s.role === null ? { kind: 'signed-out' } : { kind: 'signed-in', role: s.role };
}

onSignedOut(() => {
  setCsrf(null);
  session.value = { kind: 'signed-out', error: 'the session ended: sign in again' };
});

export async function checkSession(): Promise<void> {
  try {
    signedIn(await api<SessionView>('GET', 'v1/session'));
  } catch (e) {
    session.value =
      e instanceof ApiFailure && e.status === 401
        ? { kind: 'signed-out' }
        : { kind: 'signed-out', error: errorText(e) };
  }
}

export async function signIn(token: string): Promise<void> {
  try {
    signedIn(await api<SessionView>('POST', 'v1/session', { token }));
  } catch (e) {
    session.value = { kind: 'signed-out', error: e instanceof ApiFailure ? e.message : errorText(e) };
  }
}

export async function signOut(): Promise<void> {
  try {
    await api('DELETE', 'v1/session');
  } finally {
    setCsrf(null);
    session.value = { kind: 'signed-out' };
  }
}
