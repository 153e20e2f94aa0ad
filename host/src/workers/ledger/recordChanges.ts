import type { WorkerManagerError } from '@worker-manager/plugin-sdk';
import { hostError } from '../../errors.ts';
import { HISTORY_LIMIT, recordChecks, schemaProblem, type LedgerState, type NewWorkerRecord, type StateTransition, type WorkerRecord, type WorkerRecordPatch } from './workerRecord.ts';
import { checkTransition, TERMINAL_PHASES, type TransitionRejection } from './workerStateMachine.ts';

// The pure half of every write, shared by the adapters: an adapter reads, calls one of these, and writes the result
// atomically (a SQLite transaction, a KV compare-and-set). The rules therefore cannot differ between adapters.

function invalid(what: string, problem: string, id?: string): WorkerManagerError {
  return hostError('HOST_ERR_WORKER_RECORD_INVALID', `${what}${id === undefined ? '' : ` of worker ${id}`} is invalid: ${problem}`, { details: { workerId: id, problem } });
}

function checkState(state: LedgerState, id: string): void {
  const problem = schemaProblem(recordChecks.state, state);
  if (problem !== undefined) throw invalid('state', problem, id);
  // A failure without a reason cannot be told apart from any other failure on a dashboard or in an alert.
  if (state.phase === 'Failed' && state.reason === undefined) throw invalid('state', 'phase Failed needs a reason', id);
}

/** The ISO string of a timestamp given as text, normalized so that stored timestamps sort as text. */
function isoOf(text: string, field: string, id: string): string {
  const time = Date.parse(text);
  if (Number.isNaN(time)) throw invalid(field, `'${text}' is not an ISO-8601 timestamp`, id);
  return new Date(time).toISOString();
}

/** The record `create` stores for `input` at time `now`. */
export function newRecord(input: NewWorkerRecord, now: Date): WorkerRecord {
  const problem = schemaProblem(recordChecks.newRecord, input);
  if (problem !== undefined) throw invalid('new worker record', problem, typeof input?.id === 'string' ? input.id : undefined);
  const state: LedgerState = structuredClone(input.state ?? { phase: 'Pending' });
  checkState(state, input.id);
  const at = now.toISOString();
  const record: WorkerRecord = {
    id: input.id,
    tenant: input.tenant,
    owner: input.owner,
    instance: input.instance,
    labels: { ...input.labels },
    spec: structuredClone(input.spec),
    desired: input.desired ?? 'Running',
    state,
    timestamps: { [state.phase]: at },
    createdAt: input.createdAt === undefined ? at : isoOf(input.createdAt, 'createdAt', input.id),
    updatedAt: at,
    restartCount: input.restartCount ?? 0,
    origin: input.origin ?? 'request',
    history: [],
    revision: 1,
  };
  if (TERMINAL_PHASES.has(state.phase)) record.finishedAt = at;
  if (input.correlationId !== undefined) record.correlationId = input.correlationId;
  if (input.providerRef !== undefined) record.providerRef = input.providerRef;
  if (input.stale !== undefined) record.stale = input.stale;
  if (input.startTimeoutMs !== undefined) record.startTimeoutMs = input.startTimeoutMs;
  return record;
}

/** Throws HOST_ERR_WORKER_REVISION_CONFLICT when the caller's compare-and-set revision is not the record's. */
export function assertRevision(record: WorkerRecord, expectedRevision: number | undefined): void {
  if (expectedRevision === undefined || expectedRevision === record.revision) return;
  throw hostError('HOST_ERR_WORKER_REVISION_CONFLICT', `worker ${record.id} is at revision ${record.revision}, the write expected ${expectedRevision}`, {
    details: { workerId: record.id, expectedRevision, revision: record.revision },
  });
}

/** What a transition does to a record: a new record to write, nothing to write (exact repeat), or a rejection. */
export type TransitionChange = { ok: true; record: WorkerRecord; changed: boolean } | TransitionRejection;

/**
 * Applies `to` through the state machine. `at` is when the transition happened (history, phase timestamps,
 * finishedAt); `now` is when it is written (updatedAt).
 */
export function applyTransition(record: WorkerRecord, to: LedgerState, at: Date, now: Date, providerRef?: string): TransitionChange {
  checkState(to, record.id);
  const check = checkTransition(record.state, endedByHost(record, to));
  if (!check.ok) return check;
  const newRef = providerRef !== undefined && providerRef !== record.providerRef;
  if (newRef) {
    const problem = schemaProblem(recordChecks.patch, { providerRef });
    if (problem !== undefined) throw invalid('patch', problem, record.id);
  }
  if (!check.changed) {
    // The same state with a new handle: a write, but no transition in the history.
    return newRef ? { ok: true, record: { ...record, providerRef, updatedAt: now.toISOString(), revision: record.revision + 1 }, changed: true } : { ok: true, record, changed: false };
  }
  const when = at.toISOString();
  const revision = record.revision + 1;
  const entry: StateTransition = { from: record.state.phase, to: check.state.phase, at: when, revision };
  if (check.state.reason !== undefined) entry.reason = check.state.reason;
  if (check.state.message !== undefined) entry.message = check.state.message;
  const next: WorkerRecord = {
    ...record,
    state: check.state,
    timestamps: { [check.state.phase]: when, ...record.timestamps },
    updatedAt: now.toISOString(),
    history: [...record.history, entry].slice(-HISTORY_LIMIT),
    revision,
  };
  if (TERMINAL_PHASES.has(check.state.phase) && next.finishedAt === undefined) next.finishedAt = when;
  if (newRef) next.providerRef = providerRef;
  return { ok: true, record: next, changed: true };
}

/**
 * What a reported state means for a record the host decided to end (`ending`): an end, whoever reports it and however
 * (the provider's Terminated after the host's terminate, its own Failed, the host's Lost), is `Failed` with the host's
 * reason, keeping the exit code; once ended, a later report of an end is a repeat. While it stops, `Stopping` keeps
 * the host's reason, and a report that it still runs is a repeat; only `Unknown` (contact lost) is applied as reported.
 */
function endedByHost(record: WorkerRecord, to: LedgerState): LedgerState {
  const ending = record.ending;
  if (ending === undefined) return to;
  if (TERMINAL_PHASES.has(to.phase)) {
    if (TERMINAL_PHASES.has(record.state.phase)) return record.state;
    const ended: LedgerState = { phase: 'Failed', reason: ending.reason };
    if (ending.message !== undefined) ended.message = ending.message;
    if (ending.pendingReason !== undefined) ended.pendingReason = ending.pendingReason;
    if (to.exitCode !== undefined) ended.exitCode = to.exitCode;
    return ended;
  }
  if (to.phase === 'Stopping') return ending.message === undefined ? { phase: 'Stopping', reason: ending.reason } : { phase: 'Stopping', reason: ending.reason, message: ending.message };
  // Until the stop takes effect the worker still runs: a report that it does (a late or repeated event) is no news.
  // Only contact lost is.
  return to.phase === 'Unknown' ? to : record.state;
}

/** Applies a patch of non-state fields; always a new revision. */
export function applyPatch(record: WorkerRecord, patch: WorkerRecordPatch, now: Date): WorkerRecord {
  const problem = schemaProblem(recordChecks.patch, patch);
  if (problem !== undefined) throw invalid('patch', problem, record.id);
  const next: WorkerRecord = { ...record, updatedAt: now.toISOString(), revision: record.revision + 1 };
  if (patch.labels !== undefined) next.labels = { ...patch.labels };
  if (patch.restartCount !== undefined) next.restartCount = patch.restartCount;
  if (patch.stale !== undefined) next.stale = patch.stale;
  if (patch.desired !== undefined) next.desired = patch.desired;
  if (patch.instance !== undefined) next.instance = patch.instance;
  if (patch.providerRef !== undefined) next.providerRef = patch.providerRef;
  if (patch.ending !== undefined) next.ending = structuredClone(patch.ending);
  return next;
}

/** A stored record, checked against the schema: a row or value another writer mangled is reported, not served. */
export function decodeStoredRecord(json: string, where: string): WorkerRecord {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (error) {
    throw hostError('HOST_ERR_WORKER_STORE_CORRUPT', `${where} is not JSON`, { cause: error, details: { where } });
  }
  const problem = schemaProblem(recordChecks.record, value);
  if (problem !== undefined) throw hostError('HOST_ERR_WORKER_STORE_CORRUPT', `${where} does not match the worker record schema: ${problem}`, { details: { where, problem } });
  return value as WorkerRecord;
}
