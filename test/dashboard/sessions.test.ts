import type { IncomingMessage } from 'node:http';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { clearedSessionCookie, readCookie, sessionCookie } from '../../gateway/dashboard/cookies.ts';
import { SessionStore } from '../../gateway/dashboard/sessions.ts';

// Dashboard sessions with an injected clock and id source: expiry by idleness and by age, the
// capacity bound, and the cookie that carries them.

const it = suite('dashboard sessions');

function store(opts: { idleMs?: number; maxAgeMs?: number; capacity?: number } = {}) {
  let t = 1_000_000;
  let n = 0;
  const s = new SessionStore({ now: () => t, random: () => `id${n++}`, ...opts });
  return { s, advance: (ms: number) => (t += ms) };
}

it('a session has its role, a CSRF token of its own, and is found by its id', () => {
  const { s } = store();
  const a = s.create('operator');
  const b = s.create('viewer');
  assert.is(a.role, 'operator');
  assert.is(b.role, 'viewer');
  assert.is.not(a.csrf, a.id);
  assert.is.not(a.csrf, b.csrf);
  assert.is(s.get(a.id), a);
  assert.is(s.get('nope'), undefined);
});

it('a session unused for idleMs ends; use keeps it alive', () => {
  const { s, advance } = store({ idleMs: 1000, maxAgeMs: 10_000 });
  const a = s.create('operator');
  advance(900);
  assert.ok(s.get(a.id));
  advance(900);
  assert.ok(s.get(a.id), 'used 900 ms ago: still alive');
  advance(1000);
  assert.is(s.get(a.id), undefined);
  assert.is(s.size, 0, 'an expired session is forgotten');
});

it('a session ends maxAgeMs after sign-in however much it is used', () => {
  const { s, advance } = store({ idleMs: 1000, maxAgeMs: 2500 });
  const a = s.create('viewer');
  for (let i = 0; i < 4; i++) {
    advance(600);
    assert.ok(s.get(a.id));
  }
  advance(600);
  assert.is(s.get(a.id), undefined);
});

it('past capacity, signing in ends the least recently used session', () => {
  const { s } = store({ capacity: 2 });
  const a = s.create('operator');
  const b = s.create('operator');
  s.get(a.id);
  const c = s.create('viewer');
  assert.is(s.size, 2);
  assert.ok(s.get(a.id));
  assert.is(s.get(b.id), undefined, 'b was the least recently used');
  assert.ok(s.get(c.id));
});

it('delete ends a session', () => {
  const { s } = store();
  const a = s.create('operator');
  s.delete(a.id);
  assert.is(s.get(a.id), undefined);
});

it('the cookie is HttpOnly, SameSite=Strict, Path=/, and Secure only over TLS', () => {
  assert.is(
    sessionCookie('abc', 60, false),
    'vigil-session=abc; Path=/; HttpOnly; SameSite=Strict; Max-Age=60',
  );
  assert.is(
    sessionCookie('abc', 60, true),
    'vigil-session=abc; Path=/; HttpOnly; SameSite=Strict; Max-Age=60; Secure',
  );
  assert.match(clearedSessionCookie(false), /^vigil-session=; .*Max-Age=0/);
});

it('readCookie finds the session among other cookies', () => {
  const req = (cookie?: string) => ({ headers: cookie === undefined ? {} : { cookie } }) as IncomingMessage;
  assert.is(readCookie(req('a=1; vigil-session=xyz; b=2'), 'vigil-session'), 'xyz');
  assert.is(readCookie(req('vigil-session-other=1'), 'vigil-session'), undefined);
  assert.is(readCookie(req(), 'vigil-session'), undefined);
});

it.run();
