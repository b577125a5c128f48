import type { Signal } from '@preact/signals';

/** A labelled choice bound to a signal; the first, empty option says what to do (or that there is nothing). */
export function SelectField(props: {
  label: string;
  name: string;
  value: Signal<string>;
  /** The text of the empty option. */
  prompt: string;
  options: readonly { readonly value: string; readonly text: string }[];
  required?: boolean;
}) {
  const { value } = props;
  return (
    <label class="field">
      <span>{props.label}</span>
      <select
        name={props.name}
        value={value.value}
        required={props.required ?? false}
        onChange={(e) => {
          value.value = e.currentTarget.value;
        }}
      >
        <option value="">{props.prompt}</option>
        {props.options.map((o) => (
          <option key={o.value} value={o.value}>
            {o.text}
          </option>
        ))}
      </select>
    </label>
  );
}
