import { useSignal } from '@preact/signals';

/**
 * A button for an action that cannot be taken back: the first click shows what it will do and
 * asks again, in the page (no `window.confirm`, which a page cannot style and tests cannot see).
 */
export function ConfirmButton(props: {
  label: string;
  /** What the action does, shown before it is confirmed. */
  confirm: string;
  disabled?: boolean;
  onConfirm: () => void;
}) {
  const asking = useSignal(false);
  if (!asking.value)
    return (
      <button
        type="button"
        class="secondary"
        disabled={props.disabled ?? false}
        onClick={() => {
          asking.value = true;
        }}
      >
        {props.label}
      </button>
    );
  return (
    <span class="confirm">
      <span class="confirm-text">{props.confirm}</span>
      <button
        type="button"
        class="danger"
        disabled={props.disabled ?? false}
        onClick={() => {
          asking.value = false;
          props.onConfirm();
        }}
      >
        Yes, {props.label.toLowerCase()}
      </button>
      <button
        type="button"
        class="link"
        onClick={() => {
          asking.value = false;
        }}
      >
        Keep going
      </button>
    </span>
  );
}
