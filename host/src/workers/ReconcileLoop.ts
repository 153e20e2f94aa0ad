import type { Worker } from '@worker-manager/plugin-sdk';
import type { Logger } from '../observability/logger.ts';
import { TERMINAL_PHASES, type LedgerPhase, type WorkerRecord } from './ledger/index.ts';
import { ledgerStateOfWorker, type WorkerLedger } from './WorkerLedger.ts';
import { adoptOrphan } from './reconcileWithProvider.ts';

/** What a reconciliation found that the ledger did not know: a missed state change, a lost worker, an orphan. */
export type DriftKind = 'state' | 'lost' | 'orphan';

/** Where a reconciliation's findings go (the host's metrics). */
export interface ReconcileObserver {
  /** One instance reconciled, in seconds. */
  reconciled(instance: string, seconds: number): void;
  drift(instance: string, kind: DriftKind): void;
  orphan(instance: string, action: 'adopt' | 'terminate' | 'ignore'): void;
}

/** What the loop needs from the worker service. */
export interface ReconcileLoopDeps {
  ledger: WorkerLedger;
  logger: Logger;
  /** Provider instances that are running now. */
  instances(): string[];
  /** Whether an instance emits worker events (`worker.events`); one that does not is polled at the poll interval. */
  emitsEvents(instance: string): boolean;
  list(instance: string): Promise<Worker[]>;
  /** True while an operation runs on the worker: its outcome is that operation's to record. */
  busy(workerId: string): boolean;
  /**
   * Asks the provider about one live worker and records the answer (Failed(`Lost`) when it no longer has it); throws
   * when the provider cannot answer. Answers the record as it then stands.
   */
  refresh(record: WorkerRecord): Promise<WorkerRecord | undefined>;
  terminate(instance: string, workerId: string): Promise<unknown>;
  orphans(instance: string): 'adopt' | 'terminate' | 'ignore';
  observer?: ReconcileObserver | undefined;
}

/** Phases of a record whose worker should exist on its provider. */
const LIVE_PHASES: LedgerPhase[] = ['Creating', 'Starting', 'Running', 'Degraded', 'Recovering', 'Paused', 'Stopping', 'Unknown'];
/** Records read per page. */
const PAGE = 1_000;

/**
 * Keeps the ledger true to the providers while the host runs (start-up adoption is `reconcileWithProvider`'s).
 *
 * - Every `pollMs`, each running instance that emits no events is listed and its live records updated from the
 *   listing: without it such a worker would stay at the state its create answered.
 * - Every `reconcileMs`, every running instance (events or not) is listed and compared with the ledger, because an
 *   event can be missed (a plugin thread restarted between a worker's exit and its event, a container removed by hand
 *   while the plugin was down): a phase that differs is applied and counted as `state` drift; a live record the
 *   listing lacks is asked about on its own and, gone from the provider, fails with `Lost` (`lost` drift); a running
 *   worker with no record is an `orphan`, handled by the instance's `orphans` policy.
 *
 * Records still Pending, and those of a worker with an operation in flight, are that operation's to record: a create
 * answered after the listing was taken must not look lost. A provider that cannot list (down, restarting) is skipped,
 * never taken as having lost its workers; reads mark them stale meanwhile.
 */
export class ReconcileLoop {
  readonly #d: ReconcileLoopDeps;
  readonly #timers: NodeJS.Timeout[] = [];
  #running: Promise<void> | undefined;

  constructor(deps: ReconcileLoopDeps) {
    this.#d = deps;
  }

  /** Starts both timers; a round still running when the next is due is not stacked with another. */
  start(intervals: { pollMs: number; reconcileMs: number }): void {
    if (this.#timers.length > 0) return;
    const every = (ms: number, all: boolean): void => {
      const timer = setInterval(() => {
        this.#running ??= this.round({ all }).finally(() => (this.#running = undefined));
      }, ms);
      timer.unref();
      this.#timers.push(timer);
    };
    every(intervals.pollMs, false);
    every(intervals.reconcileMs, true);
  }

  /** Stops the timers and waits for a round in flight. */
  async stop(): Promise<void> {
    for (const timer of this.#timers.splice(0)) clearInterval(timer);
    await this.#running;
  }

  /** One round: every running instance without events, or (`all`) every running instance, reconciled. */
  async round(options: { all: boolean }): Promise<void> {
    for (const instance of this.#d.instances()) {
      const events = this.#d.emitsEvents(instance);
      if (events && !options.all) continue;
      const started = performance.now();
      try {
        await this.#reconcile(instance, options.all, events);
        if (options.all) this.#d.observer?.reconciled(instance, (performance.now() - started) / 1_000);
      } catch (error) {
        this.#d.logger.warn({ instance, err: error instanceof Error ? error.message : String(error) }, 'could not reconcile a provider instance with the ledger; its workers keep their last known state');
      }
    }
  }

  /**
   * One instance. `full`: orphans are looked for too. A changed phase counts as drift only for an instance that emits
   * events: for one that does not, the listing is how every change is learnt, so a change found by it is not a missed
   * one. A lost worker and an orphan are drift whatever the provider.
   */
  async #reconcile(instance: string, full: boolean, events: boolean): Promise<void> {
    const { ledger } = this.#d;
    const listed = new Map((await this.#d.list(instance)).map((w) => [w.workerId, w]));
    const drift = (kind: DriftKind, workerId: string, detail: Record<string, unknown>): void => {
      if (kind === 'state' && !events) return;
      this.#d.observer?.drift(instance, kind);
      this.#d.logger.warn({ instance, workerId, kind, ...detail }, 'the ledger had missed a change of a worker; corrected from the provider');
    };
    for (let cursor: string | undefined, first = true; first || cursor !== undefined; first = false) {
      const page = await ledger.store.list({ instance, phases: LIVE_PHASES, limit: PAGE, ...(cursor === undefined ? {} : { cursor }) });
      cursor = page.nextCursor;
      for (const record of page.items) {
        if (this.#d.busy(record.id)) continue;
        const worker = listed.get(record.id);
        if (worker === undefined) {
          // Not in the listing: asked on its own, since it may have been made after the listing was taken.
          const now = await this.#d.refresh(record).catch((error: unknown) => {
            this.#d.logger.warn({ instance, workerId: record.id, err: error instanceof Error ? error.message : String(error) }, 'could not ask a provider about a worker');
            return undefined;
          });
          if (now?.state.phase === 'Failed' && now.state.reason === 'Lost') drift('lost', record.id, { was: record.state.phase });
          continue;
        }
        const observed = await ledger.serial(record.id, () => ledger.observe(instance, record.id, ledgerStateOfWorker(worker), full ? 'reconcile' : 'poll'));
        if (observed?.changed === true && observed.record.state.phase !== record.state.phase) drift('state', record.id, { was: record.state.phase, now: observed.record.state.phase });
      }
    }
    if (full) await this.#orphans(instance, listed);
  }

  /** Running workers of the instance that the ledger has no record of, per the instance's `orphans` policy. */
  async #orphans(instance: string, listed: ReadonlyMap<string, Worker>): Promise<void> {
    const { ledger } = this.#d;
    const policy = this.#d.orphans(instance);
    for (const worker of listed.values()) {
      // A finished worker with no record is one whose record was purged after its retention: nothing to do.
      if (TERMINAL_PHASES.has(ledgerStateOfWorker(worker).phase) || this.#d.busy(worker.workerId)) continue;
      if ((await ledger.store.get(worker.workerId)) !== undefined) continue;
      this.#d.observer?.drift(instance, 'orphan');
      this.#d.observer?.orphan(instance, policy);
      this.#d.logger.warn({ instance, workerId: worker.workerId, action: policy }, 'found a running worker the ledger has no record of');
      if (policy === 'adopt') await adoptOrphan(ledger, instance, worker);
      else if (policy === 'terminate') {
        await this.#d.terminate(instance, worker.workerId).catch((error: unknown) => this.#d.logger.error({ instance, workerId: worker.workerId, err: error instanceof Error ? error.message : String(error) }, 'could not terminate an orphan worker'));
      }
    }
  }
}
