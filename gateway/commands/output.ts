// Plain-text output for operators: aligned tables and short relative times.

export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return `${[line(headers), ...rows.map(line)].join('\n')}\n`;
}

/** "12s ago", "3m ago", "in 4m": enough to see what is recent. */
export function ago(t: number | null, now = Date.now()): string {
  if (t === null) return '-';
  const d = now - t;
  const a = Math.abs(d);
  const span =
    a < 1000
      ? `${a}ms`
      : a < 60_000
        ? `${Math.round(a / 1000)}s`
        : a < 3_600_000
          ? `${Math.round(a / 60_000)}m`
          : a < 86_400_000
            ? `${Math.round(a / 3_600_000)}h`
            : `${Math.round(a / 86_400_000)}d`;
  return d >= 0 ? `${span} ago` : `in ${span}`;
}

export const labelsText = (labels: Readonly<Record<string, string>>): string =>
  Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',') || '-';

export function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}
