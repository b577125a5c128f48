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

type GoalFigure = (
  name: string,
  value: number,
  unit: string,
  goal: number,
  details?: Record<string, unknown>,
) => Figure;

/** Figures with a goal of one kind: `sign` says it (e.g. "≤ 0.15"), `meets` whether a value does. */
function withGoal(sign: string, meets: (value: number, goal: number) => boolean): GoalFigure {
  return (name, value, unit, goal, details = {}) => ({
    name,
    value: round(value),
    unit,
    goal: `${sign} ${goal}`,
    pass: meets(value, goal),
    ...details,
  });
}

export const atMost = withGoal('≤', (value, goal) => value <= goal);
export const atLeast = withGoal('≥', (value, goal) => value >= goal);

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
