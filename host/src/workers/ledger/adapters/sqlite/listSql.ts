import type { LabelRequirement } from '../../labelSelector.ts';
import type { NormalizedListQuery } from '../../listQuery.ts';

/** A SQL fragment and the values bound to its placeholders, in order. */
export interface BoundSql {
  sql: string;
  params: Array<string | number>;
}

const placeholders = (n: number): string => Array.from({ length: n }, () => '?').join(', ');

/**
 * One label requirement as a condition on `w`. Positive forms are `w.id IN (...)` so that the planner may start from
 * the (key, value) index when a label is rare; negative forms (which also hold when the key is absent) are
 * `NOT EXISTS`, a primary-key probe on (worker_id, key) per candidate row. Keys and values are always bound.
 */
export function requirementSql(r: LabelRequirement): BoundSql {
  switch (r.op) {
    case 'exists':
      return { sql: 'w.id IN (SELECT worker_id FROM worker_labels WHERE key = ?)', params: [r.key] };
    case 'notExists':
      return { sql: 'NOT EXISTS (SELECT 1 FROM worker_labels l WHERE l.worker_id = w.id AND l.key = ?)', params: [r.key] };
    case 'in':
      return { sql: `w.id IN (SELECT worker_id FROM worker_labels WHERE key = ? AND value IN (${placeholders(r.values.length)}))`, params: [r.key, ...r.values] };
    case 'notIn':
      return {
        sql: `NOT EXISTS (SELECT 1 FROM worker_labels l WHERE l.worker_id = w.id AND l.key = ? AND l.value IN (${placeholders(r.values.length)}))`,
        params: [r.key, ...r.values],
      };
  }
}

/**
 * The SELECT for one page: filters, keyset condition on (created_at, id) after the cursor, order, and limit + 1 rows
 * (the extra row tells whether a next page exists). Keyset rather than OFFSET, so page 100 costs what page 1 costs.
 */
export function listSql(query: NormalizedListQuery): BoundSql {
  const where: string[] = [];
  const params: Array<string | number> = [];
  if (query.phases !== undefined) {
    // An empty phase list selects nothing; `IN ()` is not valid SQL.
    where.push(query.phases.length === 0 ? '0' : `w.phase IN (${placeholders(query.phases.length)})`);
    params.push(...query.phases);
  }
  for (const column of ['instance', 'tenant', 'owner'] as const) {
    const value = query[column];
    if (value === undefined) continue;
    where.push(`w.${column} = ?`);
    params.push(value);
  }
  for (const r of query.selector?.requirements ?? []) {
    const bound = requirementSql(r);
    where.push(bound.sql);
    params.push(...bound.params);
  }
  const direction = query.order === 'asc' ? 'ASC' : 'DESC';
  if (query.after !== undefined) {
    where.push(`(w.created_at, w.id) ${query.order === 'asc' ? '>' : '<'} (?, ?)`);
    params.push(query.after.createdAt, query.after.id);
  }
  params.push(query.limit + 1);
  const filter = where.length === 0 ? '' : `WHERE ${where.join(' AND ')}`;
  return { sql: `SELECT w.record FROM workers w ${filter} ORDER BY w.created_at ${direction}, w.id ${direction} LIMIT ?`, params };
}
