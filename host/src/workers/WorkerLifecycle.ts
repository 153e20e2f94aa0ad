import { MAX_TIMER_MS } from '@worker-manager/plugin-sdk';
import { hostError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import { LEDGER_PHASES, TERMINAL_PHASES, type LedgerPhase, type WorkerEnding, type WorkerRecord } from './ledger/index.ts';
import type { WorkerLedger } from './WorkerLedger.ts';
import { lifecycleDue } from './workerDeadlines.ts';

/** An ending to carry out: the reason the record will end Failed with, and what to tell the operator. */
export type EndingRequest = Omit<WorkerEnding, 'at'>;

/** What the lifecycle needs from the worker service. */
export interface WorkerLifecycleDeps {
  ledger: WorkerLedger;
  logger: Logger;
  /** Start timeout of a new worker of this instance (its override, else the host's); undefined: none. */
  startTimeoutMs(instance: string): number | undefined;
  /** Whether this host looks after the workers of an instance (one its config has). */
  owns(instance: string): boolean;
  /** True while an operation that decides the worker's fate (create, terminate, restart) runs on it. */
  busy(workerId: string): boolean;
  /** Carries out an ending: records it, has the provider terminate the worker, records the end. */
  end(record: WorkerRecord, ending: EndingRequest): Promise<void>;
}

/** Phases of a worker that has not ended. */
const LIVE_PHASES: LedgerPhase[] = LEDGER_PHASES.filter((p) => !TERMINAL_PHASES.has(p));
/** Waits, in ms, before an ending that failed (a provider that is down or restarting) is tried again. */
const RETRIES_MS = [1_000, 2_000, 5_000, 10_000, 30_000, 60_000];
/** How soon a due worker whose create, terminate or restart is in flight is looked at again, in ms. */
const BUSY_RECHECK_MS = 500;
/** How often a drain re-reads the ledger when no write woke it, in ms. */
const DRAIN_RECHECK_MS = 1_000;
/** Longest wait, at shutdown, for a create or terminate in flight on a worker before ending it anyway, in ms. */
const BUSY_WAIT_MS = 120_000;
/** Records read per page when scanning the ledger. */
const PAGE = 1_000;

/**
 * The host's side of every worker's lifecycle, the same for every provider: it ends a worker that runs past its
 * deadline (`spec.timeoutMs`, `DeadlineExceeded`) or does not start in time (`StartTimeout`), and at shutdown drains
 * or terminates workers (`HostShutdown`). When is decided here, from the ledger alone, so a restarted host arms the
 * same deadlines; how a worker is ended is the worker service's (`deps.end`).
 *
 * One timer per worker that has something due, re-armed by every write the ledger makes to its record. An ending that
 * fails is retried with backoff until the worker has ended.
 */
export class WorkerLifecycle {
  readonly #deps: WorkerLifecycleDeps;
  readonly #timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  /** Endings being carried out, by worker: one at a time per worker. */
  readonly #endings = new Map<string, Promise<void>>();
  /** Failed attempts per worker, and when the next one is due. */
  readonly #retries = new Map<string, { attempts: number; at: number }>();
  /** Woken by every ledger write: a drain waiting for workers to end. */
  readonly #wakers = new Set<() => void>();
  readonly #unsubscribe: () => void;
  #armed = false;
  #stopped = false;
  /** While the host shuts down with drain or terminate: creates are refused until then (epoch ms). */
  #drainUntil: number | undefined;

  constructor(deps: WorkerLifecycleDeps) {
    this.#deps = deps;
    this.#unsubscribe = deps.ledger.onRecordChange((record) => {
      this.arm(record);
      for (const wake of [...this.#wakers]) wake();
    });
  }

  /** Arms the timer of every live worker the ledger holds for this host's instances; timers fire from now on. */
  async start(): Promise<void> {
    this.#armed = true;
    for await (const record of this.#liveRecords()) this.arm(record);
  }

  /** Re-arms (or disarms) one worker's timer from its record. */
  arm(record: WorkerRecord): void {
    if (!this.#armed || this.#stopped || !this.#deps.owns(record.instance)) return;
    const due = lifecycleDue(record, this.#deps.startTimeoutMs(record.instance));
    if (due === undefined) {
      this.#disarm(record.id);
      this.#retries.delete(record.id);
      return;
    }
    this.#schedule(record.id, Math.max(due.at, this.#retries.get(record.id)?.at ?? 0));
  }

  /** Stops every timer and waits for the endings in flight (each bounded by its provider call's deadline). */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#unsubscribe();
    for (const id of [...this.#timers.keys()]) this.#disarm(id);
    for (const wake of [...this.#wakers]) wake();
    await Promise.allSettled([...this.#endings.values()]);
  }

  /** True once the host has begun a drain or terminate shutdown: new workers are refused. */
  get draining(): boolean {
    return this.#drainUntil !== undefined;
  }

  /** Refuses new workers from now on (HOST_ERR_DRAINING), telling callers to come back after `until` (epoch ms). */
  beginDrain(until: number): void {
    this.#drainUntil ??= until;
  }

  /** Throws HOST_ERR_DRAINING while the host shuts down with drain or terminate. */
  assertAccepting(): void {
    if (this.#drainUntil === undefined) return;
    const retryAfterSeconds = Math.max(1, Math.ceil((this.#drainUntil - Date.now()) / 1_000));
    throw hostError('HOST_ERR_DRAINING', `the host is shutting down and accepts no new workers; retry in ${retryAfterSeconds} s, on another host or on this one once restarted`, {
      details: { retryAfterSeconds },
    });
  }

  /** Live workers of this host's instances, as the ledger has them. */
  async liveRecords(): Promise<WorkerRecord[]> {
    const out: WorkerRecord[] = [];
    for await (const record of this.#liveRecords()) out.push(record);
    return out;
  }

  /**
   * Waits until no worker of this host's instances is live, or `until` (epoch ms) passes; woken by every ledger write.
   * Answers how many were still live.
   */
  async awaitNoLiveWorkers(until: number): Promise<number> {
    for (;;) {
      let wake!: () => void;
      const woken = new Promise<void>((resolve) => (wake = resolve));
      this.#wakers.add(wake);
      const timer = setTimeout(wake, Math.max(0, Math.min(DRAIN_RECHECK_MS, until - Date.now())));
      try {
        const live = (await this.liveRecords()).length;
        if (live === 0 || Date.now() >= until || this.#stopped) return live;
        await woken;
      } finally {
        clearTimeout(timer);
        this.#wakers.delete(wake);
      }
    }
  }

  /**
   * Ends every live worker of this host's instances at once, each with its provider's grace period; a worker whose
   * ending is already under way (its deadline) finishes that one. Answers the ids still live afterwards.
   */
  async endAll(ending: EndingRequest): Promise<string[]> {
    const records = await this.liveRecords();
    await Promise.allSettled(records.map(async (record) => {
      const started = Date.now();
      // A create in flight may make the worker after a terminate that found nothing: wait for its answer first.
      while (this.#deps.busy(record.id) && Date.now() - started < BUSY_WAIT_MS) await new Promise((resolve) => setTimeout(resolve, BUSY_RECHECK_MS));
      await (this.#endings.get(record.id) ?? this.#run(record.id, ending));
    }));
    const left: string[] = [];
    for (const record of records) {
      const now = await this.#deps.ledger.store.get(record.id);
      if (now !== undefined && !TERMINAL_PHASES.has(now.state.phase)) left.push(record.id);
    }
    return left;
  }

  #schedule(workerId: string, at: number): void {
    const current = this.#timers.get(workerId);
    if (current?.at === at) return;
    if (current !== undefined) clearTimeout(current.timer);
    const timer = setTimeout(() => this.#fire(workerId), Math.min(MAX_TIMER_MS, Math.max(0, at - Date.now())));
    timer.unref();
    this.#timers.set(workerId, { at, timer });
  }

  #disarm(workerId: string): void {
    const current = this.#timers.get(workerId);
    if (current === undefined) return;
    clearTimeout(current.timer);
    this.#timers.delete(workerId);
  }

  #fire(workerId: string): void {
    this.#timers.delete(workerId);
    if (this.#stopped || this.#endings.has(workerId)) return;
    void this.#run(workerId);
  }

  /**
   * Reads the record again and carries out what is due now: `ending` overrides what the record says (a shutdown).
   * A worker whose create, terminate or restart is in flight is looked at again shortly: that operation decides
   * first. An attempt that leaves the worker live is retried with backoff.
   */
  #run(workerId: string, ending?: EndingRequest): Promise<void> {
    const run = (async () => {
      const record = await this.#deps.ledger.store.get(workerId);
      if (record === undefined || TERMINAL_PHASES.has(record.state.phase)) return;
      const due = lifecycleDue(record, this.#deps.startTimeoutMs(record.instance));
      const todo = ending ?? (due !== undefined && due.at <= Date.now() ? due.ending : undefined);
      if (todo === undefined) {
        // The record moved on since the timer was set (it started, its deadline changed): arm it anew.
        this.arm(record);
        return;
      }
      if (this.#deps.busy(workerId)) {
        if (ending === undefined) this.#schedule(workerId, Date.now() + BUSY_RECHECK_MS);
        return;
      }
      try {
        await this.#deps.end(record, todo);
      } catch (error) {
        this.#deps.logger.warn({ instance: record.instance, workerId, reason: record.ending?.reason ?? todo.reason, err: error instanceof Error ? error.message : String(error) }, 'could not end a worker; will retry');
      }
      const after = await this.#deps.ledger.store.get(workerId);
      if (after === undefined || TERMINAL_PHASES.has(after.state.phase)) {
        this.#retries.delete(workerId);
        return;
      }
      // Still live: the provider could not be reached, or reported no end yet. Tried again until it has ended.
      const attempts = (this.#retries.get(workerId)?.attempts ?? 0) + 1;
      const at = Date.now() + (RETRIES_MS[Math.min(attempts, RETRIES_MS.length) - 1] ?? 60_000);
      this.#retries.set(workerId, { attempts, at });
      if (!this.#stopped) this.#schedule(workerId, at);
    })().finally(() => {
      if (this.#endings.get(workerId) === run) this.#endings.delete(workerId);
    });
    this.#endings.set(workerId, run);
    return run;
  }

  async *#liveRecords(): AsyncGenerator<WorkerRecord> {
    let cursor: string | undefined;
    do {
      const page = await this.#deps.ledger.store.list({ phases: LIVE_PHASES, limit: PAGE, ...(cursor === undefined ? {} : { cursor }) });
      for (const record of page.items) if (this.#deps.owns(record.instance)) yield record;
      cursor = page.nextCursor;
    } while (cursor !== undefined);
  }
}
