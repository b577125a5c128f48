import type { Figure } from './figure.ts';

/** The figures as a fixed-width table: figure, value, unit, goal, pass. */
export function printTable(figures: readonly Figure[]): string {
  const rows = figures.map((f) => [
    f.name,
    f.value === null ? 'n/a' : String(f.value),
    f.unit,
    f.goal,
    f.pass === null ? (f.value === null ? '—' : '') : f.pass ? 'pass' : 'MISS',
  ]);
  const head = ['figure', 'value', 'unit', 'goal', 'pass'];
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (i === 1 ? c.padStart(width[i]!) : c.padEnd(width[i]!)))
      .join('  ')
      .trimEnd();
  const notes = figures.filter((f) => f.note).map((f) => `  note (${f.name}): ${f.note}`);
  return (
    [line(head), width.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line), ...notes].join('\n') + '\n'
  );
}
