import { createHash } from 'node:crypto';
import { WorkerManagerError, type RuntimeSpec, type Worker, type WorkerEvent, type WorkerState } from '@worker-manager/plugin-sdk';
import { hostError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import { TERMINAL_PHASES, ledgerStateOf, type LedgerPhase, type LedgerState, type NewWorkerRecord, type WorkerRecord, type WorkerStore } from './ledger/index.ts';
import type { LedgerSettings } from './ledger/ledgerSettings.ts';

/** The SDK phase a ledger phase is reported as to callers that speak the provider contract. */
const SDK_PHASE_OF: Readonly<Record<LedgerPhase, WorkerState['phase']>> = {
  Pending: 'Creating',
  Creating: 'Creating',
  Starting: 'Starting',
  Running: 'Running',
  Degraded: 'Running',
  Recovering: 'Running',
  Paused: 'Paused',
  Stopping: 'Terminating',
  Terminated: 'Terminated',
  Failed: 'Failed',
  Unknown: 'Unknown',
};

/** Tenant and principal a record and an idempotency key are scoped to when the caller named none. */
export const DEFAULT_TENANT = 'default';
/** Principal of a request that named none (a host-internal call, a test). */
export const ANONYMOUS = 'anonymous';
/** Failed reason of a create that failed before (or without leaving) a worker; retrying its idempotency key creates again. */
export const CREATE_FAILED = 'CreateFailed';

/** What the ledger needs. */
export interface WorkerLedgerDeps {
  /** The store; or attached later with {@link WorkerLedger.attach}, once the state dir is locked. */
  store?: WorkerStore;
  settings: LedgerSettings;
  logger: Logger;
  /** Told about every provider-reported transition the state machine refused (a metric). */
  onIllegalTransition?(instance: string, from: LedgerPhase, to: LedgerPhase): void;
}

/** A record after a write, with the revision an event about it must carry. */
export interface Observed {
  record: WorkerRecord;
  /** False when the state machine refused the change, or it repeated the current state. */
  changed: boolean;
}

/**
 * The worker service's side of the ledger: the order of writes per worker (so an event about a write is published
 * after the write, in the order the writes happened), idempotency keys scoped to tenant and principal, the mapping of
 * provider events onto the state machine, and the periodic purge of finished records and expired keys.
 */
export class WorkerLedger {
  #store: WorkerStore | undefined;
  readonly #settings: LedgerSettings;
  readonly #logger: Logger;
  readonly #onIllegal: WorkerLedgerDeps['onIllegalTransition'];
  readonly #queues = new Map<string, Promise<unknown>>();
  /** Callers waiting for the next change of a worker's record (`awaitRecord`). */
  readonly #watchers = new Map<string, Set<() => void>>();
  /** Told about every record this ledger creates or moves to another state (the lifecycle's deadlines). */
  readonly #listeners = new Set<(record: WorkerRecord) => void>();
  #purgeTimer: NodeJS.Timeout | undefined;

  constructor(deps: WorkerLedgerDeps) {
    this.#store = deps.store;
    this.#settings = deps.settings;
    this.#logger = deps.logger;
    this.#onIllegal = deps.onIllegalTransition;
  }

  /** The store; HOST_ERR_WORKER_STORE_UNAVAILABLE before the host has opened it. */
  get store(): WorkerStore {
    if (this.#store === undefined) throw hostError('HOST_ERR_WORKER_STORE_UNAVAILABLE', 'the worker ledger is not open (the host has not started)');
    return this.#store;
  }

  /** The store, or undefined before the host has opened it (for lookups that can do without). */
  get openStore(): WorkerStore | undefined {
    return this.#store;
  }

  /** Attaches the store the host opened after locking its state dir. */
  attach(store: WorkerStore): void {
    this.#store = store;
  }

  /** Runs `fn` after every earlier write about `workerId` has settled; writes about other workers run in parallel. */
  serial<T>(workerId: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#queues.get(workerId) ?? Promise.resolve();
    const run = before.then(fn, fn);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.#queues.set(workerId, tail);
    void tail.then(() => {
      if (this.#queues.get(workerId) === tail) this.#queues.delete(workerId);
    });
    return run;
  }

  /**
   * Writes the record of a worker about to be created (Pending), before any provider is called, so that nothing is
   * created that the ledger cannot find. A finished record with the same id is replaced (ids are the caller's to
   * reuse); a live one is a conflict.
   */
  admit(input: NewWorkerRecord): Promise<WorkerRecord> {
    return this.serial(input.id, async () => {
      const existing = await this.store.get(input.id);
      if (existing !== undefined) {
        if (!TERMINAL_PHASES.has(existing.state.phase)) {
          throw new WorkerManagerError('WM_ERR_ALREADY_EXISTS', `worker '${input.id}' already exists (${existing.state.phase} on '${existing.instance}')`, {
            details: { workerId: input.id, instance: existing.instance, phase: existing.state.phase },
          });
        }
        await this.store.delete(input.id);
      }
      const record = await this.store.create(input);
      this.#changed(record);
      return record;
    });
  }

  /**
   * Calls `listener` with every record this ledger admits or moves to another state, right after the write (a
   * listener must not throw or wait: it runs inside the worker's write queue). Returns the way to stop.
   */
  onRecordChange(listener: (record: WorkerRecord) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #changed(record: WorkerRecord): void {
    for (const listener of this.#listeners) {
      try {
        listener(record);
      } catch (error) {
        this.#logger.error({ workerId: record.id, err: error instanceof Error ? error.message : String(error) }, 'a worker record listener failed');
      }
    }
  }

  /**
   * Applies a state the host or a provider reported. A change the state machine refuses is logged, counted and not
   * applied; the caller gets the record as it stands. Undefined when the ledger has no record of the worker.
   */
  async observe(instance: string, workerId: string, to: LedgerState, source: string, providerRef?: string): Promise<Observed | undefined> {
    const outcome = await this.store.transition(workerId, to, providerRef === undefined ? {} : { providerRef }).catch((error: unknown) => {
      if (error instanceof WorkerManagerError && error.code === 'HOST_ERR_WORKER_RECORD_NOT_FOUND') return undefined;
      throw error;
    });
    if (outcome === undefined) return undefined;
    if (!outcome.ok) {
      this.#logger.warn({ instance, workerId, from: outcome.from, to: outcome.to, source }, 'ignored an impossible worker state change');
      this.#onIllegal?.(instance, outcome.from, outcome.to);
      return { record: outcome.record, changed: false };
    }
    if (outcome.changed) {
      this.#notify(workerId);
      this.#changed(outcome.record);
    }
    return { record: outcome.record, changed: outcome.changed };
  }

  /**
   * Waits until `until` holds for the worker's record, re-reading it after every change this ledger writes and at
   * least every `recheckMs` (a change written by another process, a missed wake-up). Before each wait that finds the
   * condition unmet, `refresh` runs (for a provider without events: ask it for the worker's state). Resolves with the
   * last record read and whether the condition was reached; never rejects on timeout or abort (the caller reports
   * what it got). The record is undefined when the worker has none (never created, or purged).
   */
  async awaitRecord(
    workerId: string,
    until: (record: WorkerRecord) => boolean,
    options: { timeoutMs: number; signal?: AbortSignal; recheckMs?: number; refresh?: () => Promise<void> },
  ): Promise<{ record: WorkerRecord | undefined; reached: boolean }> {
    const deadline = Date.now() + options.timeoutMs;
    const recheckMs = options.recheckMs ?? 1_000;
    for (let round = 0; ; round++) {
      // Registered before the read, so that a change between the read and the wait is not missed.
      const changed = this.#nextChange(workerId, Math.max(0, Math.min(recheckMs, deadline - Date.now())), options.signal);
      const record = await this.store.get(workerId);
      if (record !== undefined && until(record)) {
        changed.cancel();
        return { record, reached: true };
      }
      if (record === undefined || Date.now() >= deadline || options.signal?.aborted === true) {
        changed.cancel();
        return { record, reached: false };
      }
      if (round > 0 && options.refresh !== undefined) await options.refresh().catch(() => undefined);
      await changed.promise;
    }
  }

  #nextChange(workerId: string, timeoutMs: number, signal: AbortSignal | undefined): { promise: Promise<void>; cancel(): void } {
    let wake!: () => void;
    const promise = new Promise<void>((resolve) => (wake = resolve));
    const watchers = this.#watchers;
    const set = watchers.get(workerId) ?? new Set<() => void>();
    watchers.set(workerId, set);
    const timer = setTimeout(() => done(), timeoutMs);
    const onAbort = (): void => done();
    signal?.addEventListener('abort', onAbort, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      set.delete(done);
      if (set.size === 0 && watchers.get(workerId) === set) watchers.delete(workerId);
      wake();
    }
    set.add(done);
    return { promise, cancel: done };
  }

  #notify(workerId: string): void {
    const set = this.#watchers.get(workerId);
    if (set === undefined) return;
    this.#watchers.delete(workerId);
    for (const wake of [...set]) wake();
  }

  /** Moves a live record to a final state; a record that already ended keeps its outcome. */
  async finish(instance: string, workerId: string, to: LedgerState, source: string): Promise<WorkerRecord | undefined> {
    const record = await this.store.get(workerId);
    if (record === undefined || TERMINAL_PHASES.has(record.state.phase)) return record;
    return (await this.observe(instance, workerId, to, source))?.record;
  }

  /**
   * Runs a provider restart and records it: a live worker goes through Recovering and back, with its restart count
   * raised; a worker that had ended gets a new record under the same id (a finished record never changes phase).
   */
  async recordRestart(instance: string, workerId: string, restart: () => Promise<Worker>): Promise<Worker> {
    const before = await this.serial(workerId, async () => {
      const record = await this.store.get(workerId);
      if (record !== undefined && (record.state.phase === 'Running' || record.state.phase === 'Degraded')) await this.observe(instance, workerId, { phase: 'Recovering' }, 'restart');
      return record;
    });
    let worker: Worker;
    try {
      worker = await restart();
    } catch (error) {
      if (before !== undefined && !TERMINAL_PHASES.has(before.state.phase)) {
        await this.serial(workerId, () => this.observe(instance, workerId, { phase: 'Unknown', message: 'restart failed' }, 'restart')).catch(() => undefined);
      }
      throw error;
    }
    if (before === undefined) return worker;
    await this.serial(workerId, async () => {
      const record = await this.store.get(workerId);
      if (record === undefined) return;
      if (TERMINAL_PHASES.has(record.state.phase)) {
        await this.store.delete(workerId);
        await this.store.create({
          id: workerId, tenant: record.tenant, owner: record.owner, instance: record.instance, labels: record.labels, spec: record.spec, desired: 'Running',
          state: { phase: 'Creating' }, restartCount: record.restartCount + 1, origin: record.origin, ...(record.correlationId === undefined ? {} : { correlationId: record.correlationId }),
        });
      } else {
        await this.store.update(workerId, { restartCount: record.restartCount + 1, desired: 'Running' });
      }
      await this.observe(instance, workerId, ledgerStateOfWorker(worker), 'restart');
    });
    return worker;
  }

  /** Starts the periodic purge of finished records past their retention and of expired idempotency keys. */
  startPurging(): void {
    if (this.#purgeTimer !== undefined) return;
    this.#purgeTimer = setInterval(() => void this.purge(), this.#settings.purgeIntervalMs);
    this.#purgeTimer.unref();
  }

  /** Purges once; a failure is logged and retried at the next interval. */
  async purge(now = new Date()): Promise<{ records: number; keys: number }> {
    try {
      const records = await this.store.purgeFinished(new Date(now.getTime() - this.#settings.retentionMs));
      const keys = await this.store.purgeIdempotency(now);
      if (records > 0 || keys > 0) this.#logger.info({ records, keys }, 'purged finished worker records and expired idempotency keys');
      return { records, keys };
    } catch (error) {
      this.#logger.error({ err: error instanceof Error ? error.message : String(error) }, 'could not purge the worker ledger');
      return { records: 0, keys: 0 };
    }
  }

  /** Stops the purge, waits for the writes in flight, and closes the store. */
  async stop(): Promise<void> {
    clearInterval(this.#purgeTimer);
    this.#purgeTimer = undefined;
    await Promise.all([...this.#queues.values()]);
    await this.#store?.close();
  }

  /** When an idempotency key given now expires. */
  keyExpiry(now = new Date()): Date {
    return new Date(now.getTime() + this.#settings.idempotencyTtlMs);
  }
}

/** The ledger state a provider event reports, or undefined for an event that reports none (WorkerCreated). */
export function ledgerStateOfEvent(event: WorkerEvent): LedgerState | undefined {
  switch (event.type) {
    case 'WorkerCreated':
      return undefined;
    case 'WorkerStateChanged':
      return ledgerStateOf(event.newState);
    case 'WorkerTerminated':
      return event.exitCode === undefined ? { phase: 'Terminated' } : { phase: 'Terminated', exitCode: event.exitCode };
    case 'WorkerFailed':
      return { phase: 'Failed', reason: event.reason };
  }
}

/** The ledger state of a worker as a provider answered it (create, restart, a listing). */
export function ledgerStateOfWorker(worker: Worker): LedgerState {
  return ledgerStateOfEvent({ type: 'WorkerStateChanged', workerId: worker.workerId, oldState: worker.state, newState: worker.state, timestamp: worker.createdAt }) ?? { phase: 'Running' };
}

/** A record as the provider contract's Worker, for callers that get one back (an idempotent replay). */
export function workerOfRecord(record: WorkerRecord): Worker {
  const phase = SDK_PHASE_OF[record.state.phase];
  let state: WorkerState;
  if (phase === 'Failed') state = { phase, reason: record.state.reason ?? 'Unknown', ...(record.state.exitCode === undefined ? {} : { exitCode: record.state.exitCode }) };
  else if (phase === 'Terminated') state = record.state.exitCode === undefined ? { phase } : { phase, exitCode: record.state.exitCode };
  else if (phase === 'Starting') state = record.state.pendingReason === undefined ? { phase } : { phase, pendingReason: record.state.pendingReason };
  else state = { phase };
  return { workerId: record.id, state, labels: { ...record.labels }, createdAt: record.createdAt, ...(record.providerRef === undefined ? {} : { providerRef: record.providerRef }) };
}

/** A stable hash of what a create asked for, so that a key reused for a different request is told apart. */
export function requestHash(request: { provider?: string; workerId?: string; spec: RuntimeSpec }): string {
  return createHash('sha256').update(canonicalJson({ provider: request.provider ?? null, workerId: request.workerId ?? null, spec: request.spec })).digest('hex');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
