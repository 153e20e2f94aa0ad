import type { LabelSelector } from './labelSelector.ts';
import type { LedgerPhase, LedgerState, NewWorkerRecord, WorkerRecord, WorkerRecordPatch } from './workerRecord.ts';
import type { TransitionRejection } from './workerStateMachine.ts';

/** Compare-and-set: the write happens only if the record is still at this revision (else HOST_ERR_WORKER_REVISION_CONFLICT). */
export interface WriteOptions {
  expectedRevision?: number;
}

/** Options of {@link WorkerStore.transition}. */
export interface TransitionOptions extends WriteOptions {
  /** Time of the transition, for when the event that caused it is older than now; default the store's clock. */
  at?: Date;
  /** The provider's handle, recorded in the same write (a create's answer carries both). */
  providerRef?: string;
}

/**
 * The outcome of a transition. A rejection is returned, not thrown, because an illegal transition reported by a
 * provider is an expected event the caller logs and counts; the record as it stands comes with it. `changed` is false
 * for an exact repeat of the current state (a redelivered event), which is accepted without a write.
 */
export type TransitionOutcome = { ok: true; record: WorkerRecord; changed: boolean } | (TransitionRejection & { record: WorkerRecord });

/** A listing query; every filter given must hold. */
export interface ListQuery {
  /** Any of these phases. */
  phases?: readonly LedgerPhase[];
  instance?: string;
  tenant?: string;
  owner?: string;
  /** A selector string (parsed here, so a bad one fails with its column) or an already parsed one. */
  selector?: string | LabelSelector;
  /** By (createdAt, id); default ascending. */
  order?: 'asc' | 'desc';
  /** Default 100, at most 1000. */
  limit?: number;
  /** The `nextCursor` of the previous page, from a query with the same filters and order. */
  cursor?: string;
}

/** One page of a listing; `nextCursor` is absent on the last page. */
export interface ListPage {
  items: WorkerRecord[];
  nextCursor?: string;
}

/** A request to remember an idempotency key. */
export interface IdempotencyClaim {
  tenant: string;
  principal: string;
  key: string;
  /** Hash of the request body: a repeat with another body is a conflict, not a replay. */
  requestHash: string;
  workerId: string;
  expiresAt: Date;
  /** What "now" is for deciding whether a stored claim has expired; default the store's clock. */
  now?: Date;
}

/** How many records one instance has in one phase. */
export interface PhaseCount {
  instance: string;
  phase: LedgerPhase;
  count: number;
}

/** What a claim found: first use, a repeat of the same request, or the same key used for a different request. */
export type IdempotencyResult = { status: 'new' } | { status: 'replay'; workerId: string } | { status: 'conflict' };

/**
 * The worker ledger: one record per worker, written only through these methods so that the state machine, history,
 * revisions and timestamps are applied in one place whatever the adapter (SQLite for a single host, JetStream KV for
 * several). Methods are async so that a networked adapter fits behind the same port.
 */
export interface WorkerStore {
  /** Adds a record; HOST_ERR_WORKER_RECORD_EXISTS if the id is taken, HOST_ERR_WORKER_RECORD_INVALID if malformed. */
  create(input: NewWorkerRecord): Promise<WorkerRecord>;
  /** The record, or undefined. */
  get(id: string): Promise<WorkerRecord | undefined>;
  /**
   * Moves the record to `to` if the state machine allows it: writes the history entry, bumps the revision, records the
   * first time each phase is entered and `finishedAt` on a terminal phase. An exact repeat of the current state is
   * accepted without a write. HOST_ERR_WORKER_RECORD_NOT_FOUND / _REVISION_CONFLICT are thrown.
   */
  transition(id: string, to: LedgerState, options?: TransitionOptions): Promise<TransitionOutcome>;
  /** Changes non-state fields; every call is a write (new revision). */
  update(id: string, patch: WorkerRecordPatch, options?: WriteOptions): Promise<WorkerRecord>;
  /** Removes the record; false if there was none. */
  delete(id: string): Promise<boolean>;
  /** A page of records matching `query`, ordered by (createdAt, id). */
  list(query?: ListQuery): Promise<ListPage>;
  /** Removes terminal records whose `finishedAt` is before `olderThan`; returns how many. */
  purgeFinished(olderThan: Date): Promise<number>;
  /** How many records each (instance, phase) pair has; pairs with none are left out. For the `wm_workers` gauge. */
  countByPhase(): Promise<PhaseCount[]>;
  /** Atomically records an idempotency key, or says what an earlier, unexpired use of it was. */
  claimIdempotency(claim: IdempotencyClaim): Promise<IdempotencyResult>;
  /** Removes idempotency records expired at `now`; returns how many. */
  purgeIdempotency(now: Date): Promise<number>;
  /** Releases the store; safe to call twice. Later calls fail with HOST_ERR_WORKER_STORE_UNAVAILABLE. */
  close(): Promise<void>;
}
