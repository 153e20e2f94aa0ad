import type { WorkerManagerError } from '@worker-manager/plugin-sdk';
import { hostError } from '../../errors.ts';
import { parseLabelSelector, selectorMatches, type LabelSelector } from './labelSelector.ts';
import type { ListPage, ListQuery } from './WorkerStore.ts';
import type { LedgerPhase, WorkerRecord } from './workerRecord.ts';
import { LEDGER_PHASES } from './workerStateMachine.ts';

/** Page size when the query names none. */
export const DEFAULT_LIST_LIMIT = 100;
/** The largest page a query may ask for. */
export const MAX_LIST_LIMIT = 1000;

/** Where a page ends: the sort key of its last record. Unique, since ids are. */
export interface ListPosition {
  createdAt: string;
  id: string;
}

/** A query with defaults applied, the selector parsed and the cursor decoded, as the adapters consume it. */
export interface NormalizedListQuery {
  phases?: readonly LedgerPhase[];
  instance?: string;
  tenant?: string;
  owner?: string;
  selector?: LabelSelector;
  order: 'asc' | 'desc';
  limit: number;
  after?: ListPosition;
}

function badQuery(problem: string, field: string): WorkerManagerError {
  return hostError('HOST_ERR_WORKER_LIST_QUERY_INVALID', `worker list query is invalid: ${problem}`, { details: { field, problem } });
}

/**
 * Encodes a position as an opaque base64url token. A position rather than an offset, so records created or removed
 * between two pages neither repeat nor skip the others; opaque, so its shape may change with a version bump.
 */
export function encodeListCursor(position: ListPosition): string {
  return Buffer.from(JSON.stringify(['wl1', position.createdAt, position.id]), 'utf8').toString('base64url');
}

/** Decodes a token made by {@link encodeListCursor}; anything else is HOST_ERR_WORKER_LIST_QUERY_INVALID. */
export function decodeListCursor(cursor: string): ListPosition {
  let data: unknown;
  try {
    data = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    data = undefined;
  }
  if (Array.isArray(data) && data.length === 3 && data[0] === 'wl1' && typeof data[1] === 'string' && typeof data[2] === 'string') {
    return { createdAt: data[1], id: data[2] };
  }
  throw badQuery('cursor is not one a worker listing returned', 'cursor');
}

/** Validates and completes a query; every adapter calls this first, so both refuse the same queries. */
export function normalizeListQuery(query: ListQuery = {}): NormalizedListQuery {
  const limit = query.limit ?? DEFAULT_LIST_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) throw badQuery(`limit must be an integer from 1 to ${MAX_LIST_LIMIT}, got ${limit}`, 'limit');
  const order = query.order ?? 'asc';
  if (order !== 'asc' && order !== 'desc') throw badQuery(`order must be asc or desc, got ${String(order)}`, 'order');
  const out: NormalizedListQuery = { order, limit };
  if (query.phases !== undefined) {
    const unknown = query.phases.filter((p) => !LEDGER_PHASES.includes(p));
    if (unknown.length > 0) throw badQuery(`unknown phase(s) ${unknown.join(', ')}`, 'phases');
    out.phases = [...new Set(query.phases)];
  }
  if (query.instance !== undefined) out.instance = query.instance;
  if (query.tenant !== undefined) out.tenant = query.tenant;
  if (query.owner !== undefined) out.owner = query.owner;
  if (query.selector !== undefined) out.selector = typeof query.selector === 'string' ? parseLabelSelector(query.selector) : query.selector;
  if (query.cursor !== undefined) out.after = decodeListCursor(query.cursor);
  return out;
}

/** Orders records by (createdAt, id) ascending; ids and ISO timestamps are ASCII, so this is SQLite's BINARY order. */
export function compareRecords(a: ListPosition, b: ListPosition): number {
  if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** Whether a record passes every filter of the query except the cursor. */
export function recordMatches(record: WorkerRecord, query: NormalizedListQuery): boolean {
  return (
    (query.phases === undefined || query.phases.includes(record.state.phase)) &&
    (query.instance === undefined || record.instance === query.instance) &&
    (query.tenant === undefined || record.tenant === query.tenant) &&
    (query.owner === undefined || record.owner === query.owner) &&
    (query.selector === undefined || selectorMatches(query.selector, record.labels))
  );
}

/**
 * Turns up to `limit + 1` records, already filtered, past the cursor and in query order, into a page: the extra one
 * only says that another page exists, so the last page carries no cursor and needs no empty follow-up request.
 */
export function toPage(rows: WorkerRecord[], limit: number): ListPage {
  if (rows.length <= limit) return { items: rows };
  const items = rows.slice(0, limit);
  const last = items[items.length - 1] as WorkerRecord;
  return { items, nextCursor: encodeListCursor({ createdAt: last.createdAt, id: last.id }) };
}

/** A page computed in memory from every record, for adapters without secondary indexes (O(n) per page). */
export function pageInMemory(records: Iterable<WorkerRecord>, query: NormalizedListQuery): ListPage {
  const sign = query.order === 'asc' ? 1 : -1;
  const { after } = query;
  const rows: WorkerRecord[] = [];
  for (const r of records) {
    if (!recordMatches(r, query)) continue;
    if (after !== undefined && sign * compareRecords(r, after) <= 0) continue;
    rows.push(r);
  }
  rows.sort((a, b) => sign * compareRecords(a, b));
  return toPage(rows.slice(0, query.limit + 1), query.limit);
}
