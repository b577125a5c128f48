import { Codes } from './codes.tsx';

/** A round's outcome in one line: its state or status, and its codes when it failed. */
export function RoundOutcome({
  round,
}: {
  round: { readonly state: string; readonly status: string | null; readonly codes: readonly string[] };
}) {
  const what = round.state === 'appraised' ? (round.status ?? 'appraised') : round.state;
  return (
    <span class="outcome">
      <span class={`status status-${what}`}>{what}</span>
      {round.codes.some((c) => c !== what) && <Codes codes={round.codes} />}
    </span>
  );
}
