import { useSignal } from '@preact/signals';
import { useId } from 'preact/hooks';
import { ApiFailure, api, errorText } from '../api.ts';
import { dateTime } from '../format.ts';
import { TextField } from '../ui/text-field.tsx';

// Release an operation to the converged members: its name (the handler configured on the
// devices), its args (a JSON object, handed to the handler as a CBOR map) and when the members run
// it. Disabled, with the reason, while the page sees the barrier not holding; the gateway judges
// the barrier again when asked and refuses with who is missing.

interface Released {
  readonly id: string;
  readonly name: string;
  readonly at: number;
  readonly members: readonly string[];
}

/** `at` as the API takes it: empty is now, digits are Unix ms, anything else goes as typed. */
function atOf(text: string): number | string | undefined {
  const v = text.trim();
  if (v === '' || v === 'now') return undefined;
  return /^\d+$/.test(v) ? Number(v) : v;
}

function argsOf(text: string): object {
  let v: unknown;
  try {
    v = JSON.parse(text.trim() === '' ? '{}' : text);
  } catch (e) {
    throw new Error(`args: not JSON (${(e as Error).message}): write an object, such as {"recipe": "b"}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new Error(`args: ${JSON.stringify(v)} is not a JSON object: write one, such as {"recipe": "b"}`);
  return v;
}

export function OperateForm({ rollout, blocked }: { rollout: string; blocked: string | null }) {
  const name = useSignal('');
  const args = useSignal('{}');
  const at = useSignal('');
  const error = useSignal<string | null>(null);
  const done = useSignal<Released | null>(null);
  const busy = useSignal(false);
  const argsId = useId();
  const release = async (e: Event) => {
    e.preventDefault();
    error.value = null;
    done.value = null;
    busy.value = true;
    try {
      const when = atOf(at.value);
      const { operation } = await api<{ operation: Released }>(
        'POST',
        `v1/rollouts/${encodeURIComponent(rollout)}/operations`,
        { name: name.value.trim(), args: argsOf(args.value), ...(when !== undefined && { at: when }) },
      );
      done.value = operation;
    } catch (err) {
      error.value = err instanceof ApiFailure ? errorText(err) : (err as Error).message;
    } finally {
      busy.value = false;
    }
  };
  return (
    <form class="operate-form" onSubmit={release}>
      <div class="form-grid">
        <TextField label="Operation" value={name} required placeholder="switch-recipe" />
        <TextField label="At" value={at} placeholder="now, +30s, or 2026-03-02T10:15:30Z" />
        <div class="field wide">
          <label for={argsId}>Args (JSON object)</label>
          <textarea
            id={argsId}
            rows={2}
            spellcheck={false}
            value={args.value}
            onInput={(e) => {
              args.value = e.currentTarget.value;
            }}
          />
        </div>
      </div>
      <button type="submit" class="primary" disabled={blocked !== null || busy.value}>
        Release operation
      </button>
      {blocked !== null && (
        <p class="muted blocked" data-blocked>
          Not now: {blocked}.
        </p>
      )}
      {error.value && (
        <p class="error" role="alert">
          {error.value}
        </p>
      )}
      {done.value && (
        <p class="released" role="status">
          <span class="wrap">{done.value.name}</span> released to {done.value.members.length} member
          {done.value.members.length === 1 ? '' : 's'} for {dateTime(done.value.at)}.
        </p>
      )}
    </form>
  );
}
