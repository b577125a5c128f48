// One row of bench/results.json and of the printed table.
export interface Figure {
  readonly name: string;
  /** null when the figure could not be measured here (see `note`). */
  readonly value: number | null;
  readonly unit: string;
  /** The goal as text, e.g. "≤ 0.15"; empty for figures reported without a goal. */
  readonly goal: string;
  /** null: no goal, or not measured. */
  readonly pass: boolean | null;
  readonly note?: string;
  readonly [detail: string]: unknown;
}

/** A figure with a goal: `bound` says it (e.g. "≤ 0.15"), `pass` whether the value meets it. */
function withGoal(
  name: string,
  value: number,
  unit: string,
  bound: string,
  pass: boolean,
  details: Record<string, unknown>,
): Figure {
  return { name, value: round(value), unit, goal: bound, pass, ...details };
}

export function atMost(
  name: string,
  value: number,
  unit: string,
  goal: number,
  details: Record<string, unknown> = {},
): Figure {
  return withGoal(name, value, unit, `≤ ${goal}`, value <= goal, details);
}

export function atLeast(
  name: string,
  value: number,
  unit: string,
  goal: number,
  details: Record<string, unknown> = {},
): Figure {
  return withGoal(name, value, unit, `≥ ${goal}`, value >= goal, details);
}

export function info(
  name: string,
  value: number,
  unit: string,
  details: Record<string, unknown> = {},
): Figure {
  return { name, value: round(value), unit, goal: '', pass: null, ...details };
}

export function unmeasured(name: string, unit: string, goal: string, note: string): Figure {
  return { name, value: null, unit, goal, pass: null, note };
}

/** Three significant digits are all any of these figures can claim. */
export function round(v: number): number {
  if (!Number.isFinite(v) || v === 0) return v;
  const digits = Math.max(0, 2 - Math.floor(Math.log10(Math.abs(v))));
  return Number(v.toFixed(Math.min(digits, 6)));
}
