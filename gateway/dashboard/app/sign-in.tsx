import { useSignal } from '@preact/signals';
import { session, signIn } from './session.ts';
import { TextField } from './ui/text-field.tsx';

export function SignIn() {
  const token = useSignal('');
  const busy = useSignal(false);
  const s = session.value;
  return (
    <main class="sign-in">
      <form
        class="card"
        onSubmit={async (e) => {
          e.preventDefault();
          busy.value = true;
          await signIn(token.value);
          busy.value = false;
          token.value = '';
        }}
      >
        <h1>Vigil gateway</h1>
        <p class="muted">
          Sign in with a token from the gateway directory: <code>operator.token</code> to operate, or{' '}
          <code>viewer.token</code> to watch.
        </p>
        <TextField label="Token" secret required value={token} />
        <button type="submit" class="primary" disabled={busy.value}>
          Sign in
        </button>
        {s.kind === 'signed-out' && s.error && <p class="error">{s.error}</p>}
      </form>
    </main>
  );
}
