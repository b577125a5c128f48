/** A colour that says what a state means, the same everywhere (styles.css `.tone-*`). */
export type Tone = 'good' | 'bad' | 'busy' | 'warn' | 'idle' | 'away';

/** A state as a coloured pill, its name as text and as `data-state` for tests and styles. */
export function StateBadge({ state, tone }: { state: string; tone: Tone }) {
  return (
    <span class={`badge tone-${tone}`} data-state={state}>
      {state}
    </span>
  );
}
