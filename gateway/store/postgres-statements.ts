// SQL of the PostgreSQL store, generated from the column lists of tables.ts: multi-row inserts
// and upserts, split so that no statement passes PostgreSQL's 65,535 bind parameters. Pure.

import type { Table } from './tables.ts';

export interface Statement {
  readonly text: string;
  readonly values: unknown[];
}

/** PostgreSQL's limit on bind parameters per statement. */
const MAX_PARAMS = 65_535;

/** What follows the VALUES list: an ON CONFLICT clause, RETURNING... */
export type Tail = string;

/** `ON CONFLICT (key) DO UPDATE SET` every other column to the new row's, optionally guarded. */
export function upsertTail(
  table: string,
  columns: readonly string[],
  key: readonly string[],
  opts: { readonly where?: string; readonly returning?: string } = {},
): Tail {
  const set = columns.filter((c) => !key.includes(c)).map((c) => `${c} = EXCLUDED.${c}`);
  return (
    `ON CONFLICT (${key.join(', ')}) DO UPDATE SET ${set.join(', ')}` +
    (opts.where ? ` WHERE ${opts.where.replaceAll('$table', table)}` : '') +
    (opts.returning ? ` RETURNING ${opts.returning}` : '')
  );
}

/**
 * `INSERT INTO table (columns) VALUES (...), (...) tail` for these rows, as few statements as the
 * parameter limit allows. Each row lists its values in the order of `columns`.
 */
export function insertRows(
  table: string,
  columns: readonly string[],
  rows: readonly (readonly unknown[])[],
  tail: Tail = '',
): Statement[] {
  const perStatement = Math.max(1, Math.floor(MAX_PARAMS / columns.length));
  const out: Statement[] = [];
  for (let start = 0; start < rows.length; start += perStatement) {
    const chunk = rows.slice(start, start + perStatement);
    const values: unknown[] = [];
    const tuples = chunk.map((row) => {
      if (row.length !== columns.length)
        throw new Error(`${table}: a row of ${row.length} values for ${columns.length} columns`);
      const first = values.length;
      values.push(...row);
      return `(${row.map((_, i) => `$${first + i + 1}`).join(', ')})`;
    });
    out.push({
      text: `INSERT INTO ${table} (${columns.join(', ')}) VALUES ${tuples.join(', ')}${tail ? ` ${tail}` : ''}`,
      values,
    });
  }
  return out;
}

/**
 * The rows of a table of tables.ts, each replacing the row with its key (a table without a key is
 * only inserted into).
 */
export function upsertRows<Row>(table: Table<unknown, Row>, rows: readonly Row[]): Statement[] {
  return insertRows(
    table.name,
    table.columns,
    rows.map((r) => rowValues(r, table.columns)),
    table.key.length > 0 ? upsertTail(table.name, table.columns, table.key) : '',
  );
}

/** The values of a row object in column order. PostgreSQL text cannot hold U+0000: see below. */
export function rowValues<Row>(row: Row, columns: readonly (keyof Row & string)[]): unknown[] {
  return columns.map((c) => pgValue(row[c]));
}

/**
 * PostgreSQL refuses U+0000 in text (SQLite keeps it). Strings reach text columns from devices
 * (an agent string, software names in a log, details quoting them); rather than losing a whole
 * record to one such character, it is stored as U+FFFD, the replacement character.
 */
export function pgValue(v: unknown): unknown {
  return typeof v === 'string' && v.includes('\u0000') ? v.replaceAll('\u0000', '\uFFFD') : v;
}

/** `SELECT columns FROM table` with the columns of tables.ts (and any the engine adds). */
export function selectFrom(table: string, columns: readonly string[]): string {
  return `SELECT ${columns.join(', ')} FROM ${table}`;
}
