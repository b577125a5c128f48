import type { Signal } from '@preact/signals';
import { useId } from 'preact/hooks';

/** A labelled one-line text input bound to a signal (ids and tokens: no spellcheck). */
export function TextField(props: {
  label: string;
  value: Signal<string>;
  placeholder?: string;
  pattern?: string;
  required?: boolean;
  /** A token: hidden as typed, and a password manager may fill it. */
  secret?: boolean;
  invalid?: boolean;
  onChange?: (value: string) => void;
}) {
  const { value } = props;
  const id = useId();
  const common = {
    id,
    value: value.value,
    spellcheck: false,
    required: props.required ?? false,
    'aria-invalid': props.invalid ?? false,
    ...(props.placeholder !== undefined && { placeholder: props.placeholder }),
    ...(props.pattern !== undefined && { pattern: props.pattern }),
    onInput: (e: { currentTarget: HTMLInputElement }) => {
      value.value = e.currentTarget.value;
      props.onChange?.(value.value);
    },
  };
  return (
    <div class="field">
      <label for={id}>{props.label}</label>
      {props.secret ? (
        <input type="password" name="token" autocomplete="current-password" {...common} />
      ) : (
        <input type="text" {...common} />
      )}
    </div>
  );
}
