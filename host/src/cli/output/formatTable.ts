/** A table column: its heading and how to read the cell from a row. */
export interface Column<T> {
  header: string;
  value: (row: T) => string;
}

// A cell is one line: a newline or tab inside a value would break the columns (and could fake rows).
function cell(text: string): string {
  return text.replace(/[\r\n\t]+/g, ' ');
}

/**
 * Formats rows as aligned columns separated by two spaces, headers in capitals, like `docker ps` and `kubectl get`.
 * The last column is not padded, so no line ends in spaces. No rows gives the header line alone.
 */
export function formatTable<T>(columns: ReadonlyArray<Column<T>>, rows: readonly T[]): string {
  const grid = [columns.map((c) => c.header.toUpperCase()), ...rows.map((r) => columns.map((c) => cell(c.value(r))))];
  const widths = columns.map((_, i) => Math.max(...grid.map((line) => line[i]?.length ?? 0)));
  return grid.map((line) => line.map((text, i) => (i === line.length - 1 ? text : text.padEnd(widths[i] ?? 0))).join('  ').trimEnd()).join('\n');
}

/** Formats `key: value` lines with the values aligned, for one object (`wm workers get`). */
export function formatFields(fields: ReadonlyArray<readonly [string, string]>): string {
  const width = Math.max(0, ...fields.map(([k]) => k.length + 1));
  return fields.map(([k, v]) => `${`${k}:`.padEnd(width)}  ${cell(v)}`.trimEnd()).join('\n');
}
