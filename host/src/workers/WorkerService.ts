import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  MAX_LABEL_VALUE_LENGTH,
  WorkerId,
  WorkerManagerError,
  capabilitiesForSpec,
  toWorkerManagerError,
  type CallOptions,
  type CapacityInfo,
  type ExecutionResult,
  type LogChunk,
  type LogOptions,
  type RuntimeSpec,
  type SecretMount,
  type Worker,
  type WorkerEvent,
  type WorkerState,
} from '@worker-manager/plugin-sdk';
import { Compile } from 'typebox/compile';
import type { EventBus } from '../bus/EventBus.ts';
import { createEvent } from '../bus/createEvent.ts';
import type { SubjectName, Subjects } from '../bus/subjects.ts';
import { hostError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { OperationObserver } from '../observability/OperationObserver.ts';
import type { PluginRegistry } from '../plugins/PluginRegistry.ts';
import type { SecretBroker } from '../secrets/SecretBroker.ts';
import type { AuditSink } from '../security/audit/AuditSink.ts';
import { TERMINAL_PHASES, ledgerStateOf, type LedgerPhase, type LedgerState, type ListQuery, type WorkerRecord } from './ledger/index.ts';
import { reconcileWithProvider } from './reconcileWithProvider.ts';
import { ReconcileLoop, type ReconcileObserver } from './ReconcileLoop.ts';
import { ANONYMOUS, CREATE_FAILED, DEFAULT_TENANT, ledgerStateOfEvent, ledgerStateOfWorker, requestHash, workerOfRecord, type WorkerLedger } from './WorkerLedger.ts';
import { assertSpecWithinLimits } from './assertSpecWithinLimits.ts';
import { DEADLINE_EXCEEDED, HOST_SHUTDOWN, START_TIMEOUT } from './workerDeadlines.ts';
import { WorkerLifecycle, type EndingRequest } from './WorkerLifecycle.ts';

import { OWNER_LABEL, TENANT_LABEL } from './workerLabels.ts';

// Re-exported: security and the API read the ownership labels from here.
export { OWNER_LABEL, TENANT_LABEL };

/** Who asks, and the id that ties the operation to its request, events and plugin calls. */
export interface OperationContext {
  correlationId?: string;
  /** Tenant the request acts for. */
  tenant?: string;
  /** Principal id of the caller. */
  owner?: string;
}

/** A request to create a worker. */
export interface CreateWorkerRequest extends OperationContext {
  /** Provider instance; the default provider instance when absent. */
  provider?: string;
  /** Chosen by the caller, or generated. */
  workerId?: string;
  spec: RuntimeSpec;
  /** Repeating a create with the same key returns the first worker instead of creating another. */
  idempotencyKey?: string;
}

/** A worker and the instance that runs it. */
export interface RoutedWorker {
  instance: string;
  worker: Worker;
}

/** A worker as the ledger knows it: the provider-contract view, its ledger phase, whether it may be out of date. */
export interface ListedWorker extends RoutedWorker {
  /** The ledger's phase (finer than the contract's: Pending, Starting, Degraded, Recovering, Stopping ...). */
  phase: LedgerPhase;
  /** True while the worker's provider instance cannot be asked (not running): its state is the last one known. */
  stale: boolean;
  /** The whole record, on a single-worker read; absent in listings and for a worker the ledger does not know yet. */
  record?: WorkerRecord;
}

/** What a create may wait for: `running` (Running, or an end reached first) or `exit` (the worker's end). */
export type CreateWait = 'running' | 'exit';

/** Phases in which a worker has started and not ended: what `running` waits for, besides an end. */
const RUNNING_PHASES: ReadonlySet<LedgerPhase> = new Set<LedgerPhase>(['Running', 'Degraded', 'Recovering', 'Paused']);

/** Waits, in ms, between attempts to terminate what a failed create may have left (a restart takes its backoff). */
const CLEANUP_RETRIES = [100, 500, 1_000, 2_000, 4_000, 8_000];

/** Creates and terminates whose event is awaited at once; far above any real burst of concurrent operations. */
const MAX_AWAITED_EVENTS = 10_000;

/** What the worker service needs. */
export interface WorkerServiceDeps {
  registry: PluginRegistry;
  bus: EventBus;
  subjects: Subjects;
  hostId: string;
  logger: Logger;
  /** Resolves spec.secretRefs; without it a spec with secret refs is refused. */
  secrets?: SecretBroker;
  /** Told about every finished operation (metrics). */
  observer?: OperationObserver;
  /** Where dropped foreign events are recorded. */
  audit?: AuditSink;
  /** The durable record of every worker; without it, routes and idempotency keys live in memory only (tests). */
  ledger?: WorkerLedger;
  /**
   * Start timeout of a new worker on an instance (`workerStartTimeoutMs` of the instance, else of the host); without
   * it, or when it answers undefined, workers have none. Deadlines (`spec.timeoutMs`) need only the ledger.
   */
  startTimeoutMs?(instance: string): number | undefined;
  /** Told what the periodic reconciliation found (metrics). */
  reconcileObserver?: ReconcileObserver;
}



/** What became of a provider event: published, or dropped because its instance does not own the worker. */
export type ProviderEventOutcome = 'published' | 'foreign';

/**
 * Foreign events in a row after which an instance is quarantined. One can be a plugin bug racing a terminate; three
 * in a row, with none of its own in between, is a plugin reporting (or claiming) workers that are not its own.
 */
export const FOREIGN_EVENTS_BEFORE_QUARANTINE = 3;

/** What one operation's log line and observer record say; filled in as the operation learns it (the instance after routing). */
interface Tracked extends OperationContext {
  instance?: string;
  workerId?: string;
  /** The operation, so that events a restart causes are not mistaken for the worker ending. */
  op?: string;
}

const EVENT_SUBJECT: Record<WorkerEvent['type'], SubjectName> = {
  WorkerCreated: 'workerCreated',
  WorkerStateChanged: 'workerStateChanged',
  WorkerTerminated: 'workerTerminated',
  WorkerFailed: 'workerFailed',
};

const CLIENT_CATEGORIES = new Set(['ClientValidation', 'Authorization']);

/** Operations that decide a worker's fate: a host ending waits for them. */
const FATEFUL_OPS: ReadonlySet<string> = new Set(['createWorker', 'terminateWorker', 'restartWorker', 'restartWithSecrets']);

/** The operation (its log line and metrics) of each reason the host ends a worker for. */
const ENDING_OPS: Readonly<Record<string, string>> = { [DEADLINE_EXCEEDED]: 'enforceDeadline', [START_TIMEOUT]: 'enforceStartTimeout', [HOST_SHUTDOWN]: 'shutdownWorker' };

/** True for an event that reports a worker's end. */
function reportsEnd(event: WorkerEvent): boolean {
  return event.type === 'WorkerTerminated' || event.type === 'WorkerFailed' || (event.type === 'WorkerStateChanged' && (event.newState.phase === 'Terminated' || event.newState.phase === 'Failed'));
}

/**
 * Routes worker operations to provider instances. It checks what the registry negotiated before calling a plugin,
 * remembers which instance owns which worker (rebuilt from the providers' own listings at start, since the
 * infrastructure is the source of truth), resolves secret refs through the SecretBroker for the one worker being
 * created, and turns provider events into bus events. Every public operation logs exactly one JSON line.
 */
export class WorkerService {
  readonly #registry: PluginRegistry;
  readonly #bus: EventBus;
  readonly #subjects: Subjects;
  readonly #hostId: string;
  readonly #logger: Logger;
  readonly #secrets: SecretBroker | undefined;
  readonly #observer: OperationObserver | undefined;
  readonly #audit: AuditSink | undefined;
  readonly #ledger: WorkerLedger | undefined;
  /** Which instance owns each worker: bound by create (or first seen in a listing), never moved by a plugin. */
  readonly #routes = new Map<string, string>();
  /** Foreign events each instance sent in a row. */
  readonly #foreignStreak = new Map<string, number>();
  /** Labels of the workers seen at create, start and list; they never change after create, so ownership can be read here. */
  readonly #labels = new Map<string, Record<string, string>>();
  readonly #idempotency = new Map<string, Promise<RoutedWorker>>();
  /** Context of the operation running on each worker, so the events its provider emits meanwhile carry its correlation id. */
  readonly #inflight = new Map<string, Tracked>();
  /**
   * The context of a create (or terminate) per worker until its provider's WorkerCreated (or WorkerTerminated) event
   * is handled: that event travels on the plugin's event channel and may arrive after the call's answer, when another
   * operation (an exec) or none is in flight. Keyed by `<workerId> <event type>`.
   */
  readonly #awaitedEvents = new Map<string, { correlationId: string | undefined; tenant: string | undefined }>();
  /** Polls providers without events and reconciles every provider with the ledger; present with a ledger. */
  readonly #reconciler: ReconcileLoop | undefined;
  readonly #startTimeoutMs: (instance: string) => number | undefined;
  /** Deadlines, start timeouts and shutdown endings; present with a ledger. */
  readonly #lifecycle: WorkerLifecycle | undefined;

  constructor(deps: WorkerServiceDeps) {
    this.#registry = deps.registry;
    this.#bus = deps.bus;
    this.#subjects = deps.subjects;
    this.#hostId = deps.hostId;
    this.#logger = deps.logger;
    this.#secrets = deps.secrets;
    this.#observer = deps.observer;
    this.#audit = deps.audit;
    this.#ledger = deps.ledger;
    this.#startTimeoutMs = deps.startTimeoutMs ?? (() => undefined);
    const ledger = deps.ledger;
    if (ledger !== undefined) {
      this.#lifecycle = new WorkerLifecycle({
        ledger, logger: deps.logger,
        startTimeoutMs: this.#startTimeoutMs,
        owns: (instance) => this.#registry.instances().some((i) => i.name === instance),
        busy: (workerId) => FATEFUL_OPS.has(this.#inflight.get(workerId)?.op ?? ''),
        end: (record, ending) => this.#endByHost(record, ending),
      });
      this.#reconciler = new ReconcileLoop({
        ledger, logger: deps.logger, observer: deps.reconcileObserver,
        instances: () => this.#providerNames(),
        emitsEvents: (instance) => this.#emitsEvents(instance),
        list: (instance) => this.#registry.provider(instance).listWorkers({}),
        busy: (workerId) => this.#inflight.has(workerId),
        refresh: async (record) => {
          await this.#refresh(record);
          return ledger.store.get(record.id);
        },
        terminate: (instance, workerId) => this.#registry.provider(instance).terminateWorker({ workerId }),
        orphans: (instance) => this.#registry.instances().find((i) => i.name === instance)?.entry.orphans ?? 'adopt',
      });
      // The end of a worker the host ended is announced by the host, once, with its reason, whoever reported it.
      ledger.onRecordChange((record) => {
        if (record.ending === undefined || !TERMINAL_PHASES.has(record.state.phase)) return;
        this.#publishWorkerEvent(record.instance, { type: 'WorkerFailed', workerId: record.id, reason: record.ending.reason, timestamp: record.finishedAt ?? record.updatedAt }, record.correlationId, record.tenant, record.revision);
      });
    }
  }

  /** Deadlines, start timeouts and the shutdown policy's endings; undefined without a ledger. */
  get lifecycle(): WorkerLifecycle | undefined {
    return this.#lifecycle;
  }

  /** Stops the lifecycle's timers and waits for the endings in flight (at host stop, before plugins stop). */
  async stopLifecycle(): Promise<void> {
    await this.#lifecycle?.stop();
  }

  /**
   * Adopts the workers each running provider already has (after a host or plugin restart), and forgets the secret
   * consumers of workers their provider no longer has (terminated while the host was down).
   */
  async start(): Promise<void> {
    const listed = new Map<string, Set<string>>();
    for (const inst of this.#registry.instances()) {
      if (inst.state !== 'running' || inst.plugin?.pkg?.metadata.kind !== 'provider') continue;
      try {
        const workers = await this.#registry.provider(inst.name).listWorkers({});
        for (const w of workers) this.#remember(inst.name, w);
        listed.set(inst.name, new Set(workers.map((w) => w.workerId)));
        if (workers.length > 0) this.#logger.info({ instance: inst.name, adopted: workers.length }, 'adopted existing workers');
        if (this.#ledger !== undefined) await reconcileWithProvider({ ledger: this.#ledger, logger: this.#logger, terminate: (workerId) => this.#registry.provider(inst.name).terminateWorker({ workerId }) }, inst.name, inst.entry.orphans, workers);
      } catch (error) {
        this.#logger.warn({ instance: inst.name, err: describe(error) }, 'could not list existing workers');
      }
    }
    // Only instances that answered are pruned: a provider that is down may still run its workers.
    const gone = new Set((this.#secrets?.allConsumers() ?? []).filter((c) => listed.get(c.instance)?.has(c.workerId) === false).map((c) => c.workerId));
    for (const workerId of gone) await this.#secrets?.forgetConsumers(workerId);
    if (gone.size > 0) this.#logger.info({ workers: [...gone] }, 'forgot secret consumers of workers that no longer exist');
    // After adoption, so that every record is up to date: deadlines that passed while the host was down fire now.
    await this.#lifecycle?.start();
  }



  createWorker(request: CreateWorkerRequest): Promise<RoutedWorker> {
    const t: Tracked = { ...pick(request), ...(request.workerId === undefined ? {} : { workerId: request.workerId }) };
    return this.#track('createWorker', t, () => {
      const key = request.idempotencyKey;
      if (key === undefined) return this.#create(request, t);
      // A key belongs to one tenant and principal: the same key from someone else is another request.
      const scope = JSON.stringify([request.tenant ?? DEFAULT_TENANT, request.owner ?? ANONYMOUS, key]);
      const first = this.#idempotency.get(scope);
      if (first !== undefined) {
        return first.then((r) => {
          t.instance = r.instance;
          t.workerId = r.worker.workerId;
          return r;
        });
      }
      const pending = this.#createOnce(request, key, t);
      this.#idempotency.set(scope, pending);
      if (this.#ledger !== undefined) {
        // The ledger remembers the key durably; the map only joins concurrent repeats to the create in flight.
        pending.then(
          () => this.#idempotency.delete(scope),
          () => this.#idempotency.delete(scope),
        );
      } else {
        // A failed create may be retried with the same key.
        pending.catch(() => this.#idempotency.delete(scope));
      }
      return pending;
    });
  }

  terminateWorker(
    workerId: string,
    options: OperationContext & { gracePeriodMs?: number } = {},
  ): Promise<{ instance: string | undefined; state: WorkerState; alreadyGone: boolean }> {
    return this.#track('terminateWorker', { ...pick(options), workerId }, async (t) => {
      const finished = await this.#finishedRecord(workerId);
      if (finished !== undefined) {
        t.instance = finished.instance;
        return this.#purgeFinished(finished, options);
      }
      let instance: string;
      try {
        instance = await this.#route(workerId);
      } catch (error) {
        // Terminating an unknown worker succeeds: it is as gone as it will ever be (idempotent terminate).
        if (error instanceof WorkerManagerError && error.code === 'WM_ERR_NOT_FOUND') {
          await this.#forget(workerId);
          return { instance: undefined, state: { phase: 'Terminated' }, alreadyGone: true };
        }
        throw error;
      }
      t.instance = instance;
      const ledger = this.#ledger;
      if (ledger !== undefined) {
        await ledger.serial(workerId, async () => {
          const record = await ledger.store.get(workerId);
          if (record === undefined || TERMINAL_PHASES.has(record.state.phase)) return;
          await ledger.store.update(workerId, { desired: 'Terminated' });
          await ledger.observe(instance, workerId, { phase: 'Stopping' }, 'terminate');
        });
      }
      const params = options.gracePeriodMs === undefined ? { workerId } : { workerId, gracePeriodMs: options.gracePeriodMs };
      if (this.#emitsEvents(instance)) this.#awaitEvent(workerId, 'WorkerTerminated', options.correlationId, options.tenant);
      const result = await this.#registry
        .provider(instance)
        .terminateWorker(params, callOptions(options.correlationId))
        .catch((error: unknown) => {
          this.#awaitedEvents.delete(`${workerId} WorkerTerminated`);
          throw error;
        });
      let endedByHost = false;
      if (ledger !== undefined) {
        const final = ledgerStateOf(result.state);
        if (TERMINAL_PHASES.has(final.phase)) endedByHost = (await ledger.serial(workerId, () => ledger.finish(instance, workerId, final, 'terminate')))?.ending !== undefined;
      }
      this.#routes.delete(workerId);
      this.#labels.delete(workerId);
      await this.#forget(workerId);
      // A worker the host had already decided to end (its deadline) is announced by the host, with that reason.
      if (!this.#emitsEvents(instance) && !endedByHost) {
        this.#publishWorkerEvent(instance, { type: 'WorkerTerminated', workerId, timestamp: new Date().toISOString() }, options.correlationId, options.tenant);
      }
      return { instance, state: result.state, alreadyGone: result.alreadyGone };
    });
  }

  /** The record of a worker that has ended, if the ledger has one. */
  async #finishedRecord(workerId: string): Promise<WorkerRecord | undefined> {
    const record = await this.#ledger?.openStore?.get(workerId);
    return record !== undefined && TERMINAL_PHASES.has(record.state.phase) ? record : undefined;
  }

  /**
   * Terminating a worker that has already ended purges its record at once (instead of at the end of its retention).
   * Its provider is still asked to terminate it, since an ended worker may keep resources (an exited container, a
   * log folder); a provider that cannot be reached leaves those to the next start's adoption, never the record.
   */
  async #purgeFinished(record: WorkerRecord, options: OperationContext & { gracePeriodMs?: number }): Promise<{ instance: string; state: WorkerState; alreadyGone: boolean }> {
    const ledger = this.#requireLedger();
    const workerId = record.id;
    try {
      await this.#registry.provider(record.instance).terminateWorker({ workerId }, callOptions(options.correlationId));
    } catch (error) {
      if (!(error instanceof WorkerManagerError && error.code === 'WM_ERR_NOT_FOUND')) {
        this.#logger.warn({ instance: record.instance, workerId, err: describe(error) }, 'could not ask the provider to clean up a finished worker; purging its record anyway');
      }
    }
    await ledger.serial(workerId, async () => {
      const now = await ledger.store.get(workerId);
      // Only the finished record: an id reused by a new create meanwhile is that create's.
      if (now !== undefined && now.revision === record.revision) await ledger.store.delete(workerId);
    });
    this.#routes.delete(workerId);
    this.#labels.delete(workerId);
    await this.#forget(workerId);
    return { instance: record.instance, state: workerOfRecord(record).state, alreadyGone: true };
  }

  getStatus(workerId: string, ctx: OperationContext = {}): Promise<{ instance: string; state: WorkerState }> {
    return this.#track('getStatus', { ...pick(ctx), workerId }, async (t) => {
      const instance = (t.instance = await this.#route(workerId));
      return { instance, state: await this.#registry.provider(instance).getWorkerStatus({ workerId }, callOptions(ctx.correlationId)) };
    });
  }

  /**
   * A page of the ledger: every worker the host owns, in creation order, whatever state its provider is in. A record
   * whose provider instance is not running is marked `stale` (its state is the last one known), so a provider being
   * down never empties a listing. With a tenant in `ctx`, only that tenant's records.
   */
  listRecords(query: ListQuery = {}, ctx: OperationContext = {}): Promise<{ items: ListedWorker[]; nextCursor?: string }> {
    return this.#track('listWorkers', { ...pick(ctx), ...(query.instance === undefined ? {} : { instance: query.instance }) }, async () => {
      const ledger = this.#requireLedger();
      // An instance the config does not have is a 404, not an empty page (a typo would look like "no workers").
      if (query.instance !== undefined) this.#registry.instance(query.instance);
      const page = await ledger.store.list(ctx.tenant === undefined ? query : { ...query, tenant: ctx.tenant });
      const running = new Set(this.#providerNames());
      return {
        items: page.items.map((record) => this.#listed(record, running, false)),
        ...(page.nextCursor === undefined ? {} : { nextCursor: page.nextCursor }),
      };
    });
  }

  /**
   * The whole record of one worker. A live worker's state is read from its provider first and applied to the record
   * (so a provider that emits no events is still seen as it is); a provider that cannot answer leaves the last known
   * state, marked stale. WM_ERR_NOT_FOUND when neither the ledger nor any provider knows the worker.
   */
  getRecord(workerId: string, ctx: OperationContext = {}): Promise<ListedWorker> {
    return this.#track('getStatus', { ...pick(ctx), workerId }, async (t) => {
      const ledger = this.#requireLedger();
      const record = await ledger.store.get(workerId);
      if (record === undefined) {
        // A worker the ledger does not know (made behind the host's back, not yet adopted): its provider's answer.
        const instance = (t.instance = await this.#route(workerId));
        const state = await this.#registry.provider(instance).getWorkerStatus({ workerId }, callOptions(ctx.correlationId));
        return { instance, worker: { workerId, state, labels: this.#labels.get(workerId) ?? {}, createdAt: new Date(0).toISOString() }, phase: ledgerStateOf(state).phase, stale: false };
      }
      t.instance = record.instance;
      const running = new Set(this.#providerNames());
      if (TERMINAL_PHASES.has(record.state.phase) || !running.has(record.instance)) return this.#listed(record, running);
      try {
        await this.#refresh(record, ctx.correlationId);
      } catch (error) {
        this.#logger.warn({ instance: record.instance, workerId, err: describe(error) }, 'could not read a worker from its provider; answering its last known state');
        return { ...this.#listed(record, running), stale: true };
      }
      return this.#listed((await ledger.store.get(workerId)) ?? record, running);
    });
  }

  /**
   * The ledger's view of one worker, without asking its provider: what a create answers with. Undefined when the
   * ledger has no record (the service runs without a ledger, or the record was purged).
   */
  async view(workerId: string): Promise<ListedWorker | undefined> {
    const ledger = this.#ledger;
    if (ledger === undefined) return undefined;
    const record = await ledger.store.get(workerId);
    return record === undefined ? undefined : this.#listed(record, new Set(this.#providerNames()));
  }

  /**
   * Waits until a worker has started (`running`: Running, Degraded, Recovering or Paused) or ended (Terminated,
   * Failed), or only until it ended (`exit`), and answers its record as it then stands: a job that exited before it
   * was seen running is answered with its end, truthfully. `reached` is false when the time ran out or the signal
   * aborted first. A provider that emits no events is asked for the worker's state while waiting.
   */
  async awaitWorker(workerId: string, until: CreateWait, options: { timeoutMs: number; signal?: AbortSignal }): Promise<{ view: ListedWorker | undefined; reached: boolean }> {
    const ledger = this.#requireLedger();
    const done = (r: WorkerRecord): boolean => TERMINAL_PHASES.has(r.state.phase) || (until === 'running' && RUNNING_PHASES.has(r.state.phase));
    const { record, reached } = await ledger.awaitRecord(workerId, done, {
      timeoutMs: options.timeoutMs,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      recheckMs: 500,
      refresh: async () => {
        const current = await ledger.store.get(workerId);
        if (current !== undefined && !this.#emitsEvents(current.instance)) await this.#refresh(current);
      },
    });
    return { view: record === undefined ? undefined : this.#listed(record, new Set(this.#providerNames())), reached };
  }

  /**
   * Starts the ledger's upkeep (ReconcileLoop): every `pollMs` providers that emit no events are asked for the state of
   * their live workers (without it, such a worker's record would stay at the state its create answered), and every
   * `reconcileMs` every provider's listing is compared with the ledger, for the changes an event missed.
   */
  startReconciling(intervals: { pollMs: number; reconcileMs: number }): void {
    this.#reconciler?.start(intervals);
  }

  /** Stops polling and reconciling, and waits for a round in flight. */
  async stopReconciling(): Promise<void> {
    await this.#reconciler?.stop();
  }

  /**
   * One round now: every running provider instance without events (the poll), or with `all` every one (the periodic
   * reconciliation, orphans included).
   */
  async reconcile(options: { all: boolean } = { all: true }): Promise<void> {
    await this.#reconciler?.round(options);
  }

  /**
   * Reads one live worker's state from its provider into the ledger; gone from the provider: Failed(Lost). A record
   * still Pending or Creating belongs to a create call in flight (one interrupted by a host stop is settled by the
   * next start's adoption): the provider may not have made the worker yet, so its absence is not a loss.
   */
  async #refresh(record: WorkerRecord, correlationId?: string): Promise<void> {
    const ledger = this.#requireLedger();
    if (TERMINAL_PHASES.has(record.state.phase) || record.state.phase === 'Pending' || this.#inflight.get(record.id)?.op === 'createWorker') return;
    try {
      const state = await this.#registry.provider(record.instance).getWorkerStatus({ workerId: record.id }, callOptions(correlationId));
      await ledger.serial(record.id, () => ledger.observe(record.instance, record.id, ledgerStateOf(state), 'status'));
    } catch (error) {
      if (!(error instanceof WorkerManagerError && error.code === 'WM_ERR_NOT_FOUND')) throw error;
      // Asked again inside the queue: a create or terminate that settled meanwhile has the last word.
      await ledger.serial(record.id, async () => {
        const now = await ledger.store.get(record.id);
        if (now === undefined || TERMINAL_PHASES.has(now.state.phase) || now.state.phase === 'Pending' || now.state.phase === 'Creating' || this.#inflight.get(record.id)?.op === 'createWorker') return;
        await ledger.finish(record.instance, record.id, { phase: 'Failed', reason: 'Lost', message: 'the provider no longer has this worker' }, 'status');
      });
    }
  }

  /** A record as an answer: the contract view, its ledger phase, staleness, and (for one worker) the whole record. */
  #listed(record: WorkerRecord, running: ReadonlySet<string>, whole = true): ListedWorker {
    const stale = record.stale === true || (!TERMINAL_PHASES.has(record.state.phase) && !running.has(record.instance));
    return { instance: record.instance, worker: workerOfRecord(record), phase: record.state.phase, stale, ...(whole ? { record } : {}) };
  }

  #requireLedger(): WorkerLedger {
    if (this.#ledger === undefined) throw hostError('HOST_ERR_WORKER_STORE_UNAVAILABLE', 'this worker service has no ledger');
    return this.#ledger;
  }

  /**
   * Workers of one provider instance, or of all running ones, as the providers list them. With a tenant in `ctx`, only
   * that tenant's workers (the `wm.tenant` label): a tenant may list, but never see another tenant's workers.
   */
  listWorkers(filter: { provider?: string; labels?: Record<string, string> } = {}, ctx: OperationContext = {}): Promise<RoutedWorker[]> {
    return this.#track('listWorkers', { ...pick(ctx), ...(filter.provider === undefined ? {} : { instance: filter.provider }) }, async () => {
      const names = filter.provider !== undefined ? [filter.provider] : this.#providerNames();
      const out: RoutedWorker[] = [];
      for (const name of names) {
        const workers = await this.#registry.provider(name).listWorkers(filter.labels === undefined ? {} : { labels: filter.labels }, callOptions(ctx.correlationId));
        for (const worker of workers) {
          this.#remember(name, worker);
          if (ctx.tenant === undefined || worker.labels[TENANT_LABEL] === ctx.tenant) out.push({ instance: name, worker });
        }
      }
      return out;
    });
  }

  getLogs(workerId: string, options: LogOptions = {}, ctx: OperationContext = {}): Promise<AsyncIterable<LogChunk> & { cancel(): void }> {
    return this.#track('getLogs', { ...pick(ctx), workerId }, async (t) => {
      const instance = (t.instance = await this.#route(workerId));
      if (options.follow === true) this.#requireCapabilities(instance, ['worker.logs.follow']);
      return this.#registry.provider(instance).getLogs({ workerId, options }, callOptions(ctx.correlationId));
    });
  }

  executeCommand(workerId: string, command: string[], timeoutMs?: number, ctx: OperationContext = {}): Promise<ExecutionResult> {
    return this.#track('executeCommand', { ...pick(ctx), workerId }, async (t) => {
      const instance = (t.instance = await this.#route(workerId));
      const params = timeoutMs === undefined ? { workerId, command } : { workerId, command, timeoutMs };
      // The call deadline must outlast the command's own timeout, or the sandbox would cut a legitimate wait short.
      return this.#registry.provider(instance).executeCommand(params, { ...callOptions(ctx.correlationId), ...(timeoutMs === undefined ? {} : { timeoutMs: timeoutMs + 5_000 }) });
    });
  }

  /** Opens a local endpoint reaching `remotePort` of the worker; WM_ERR_COMPATIBILITY when its provider cannot. */
  portForward(workerId: string, port: { remotePort: number; localPort?: number }, ctx: OperationContext = {}): Promise<{ instance: string; endpoint: string }> {
    return this.#track('portForward', { ...pick(ctx), workerId }, async (t) => {
      const instance = (t.instance = await this.#route(workerId));
      this.#requireCapabilities(instance, ['worker.portForward']);
      const params = port.localPort === undefined ? { workerId, remotePort: port.remotePort } : { workerId, remotePort: port.remotePort, localPort: port.localPort };
      const { endpoint } = await this.#registry.provider(instance).portForward(params, callOptions(ctx.correlationId));
      return { instance, endpoint };
    });
  }

  pauseWorker(workerId: string, ctx: OperationContext = {}): Promise<WorkerState> {
    return this.#track('pauseWorker', { ...pick(ctx), workerId }, async (t) => {
      t.instance = await this.#route(workerId);
      return this.#registry.provider(t.instance).pauseWorker({ workerId }, callOptions(ctx.correlationId));
    });
  }

  resumeWorker(workerId: string, ctx: OperationContext = {}): Promise<WorkerState> {
    return this.#track('resumeWorker', { ...pick(ctx), workerId }, async (t) => {
      t.instance = await this.#route(workerId);
      return this.#registry.provider(t.instance).resumeWorker({ workerId }, callOptions(ctx.correlationId));
    });
  }

  /**
   * Restarts a worker with the same spec. A worker that uses secrets gets them resolved afresh (for the tenant it was
   * created for), since a provider never stores values and a restarted env-mounted worker would otherwise have none.
   */
  restartWorker(workerId: string, ctx: OperationContext = {}): Promise<Worker> {
    return this.#track('restartWorker', { ...pick(ctx), workerId }, async (t) => {
      const instance = (t.instance = await this.#route(workerId));
      const consumers = this.#secrets?.consumersOfWorker(workerId) ?? [];
      const first = consumers[0];
      if (this.#secrets === undefined || first === undefined) return this.#restartRecorded(instance, workerId, () => this.#registry.provider(instance).restartWorker({ workerId }, callOptions(ctx.correlationId)));
      const secrets = await this.#secrets.resolve({ workerId, tenant: first.tenant, refs: consumers.map((c) => c.ref), ...pick(ctx, ['correlationId', 'owner']) });
      return this.#restartRecorded(instance, workerId, () => this.#registry.provider(instance).restartWorker({ workerId, secrets }, callOptions(ctx.correlationId)));
    });
  }

  /**
   * Delivers new secret material to a running worker (file and volume mounts are replaced atomically by the provider,
   * env mounts are ignored), then sends `signal` if given. The RotationEngine calls it for `hot` and `signal` consumers.
   */
  refreshSecrets(workerId: string, mounts: SecretMount[], opts: { signal?: string; correlationId?: string } = {}): Promise<void> {
    return this.#track('refreshSecrets', { ...pick(opts), workerId }, async (t) => {
      const instance = (t.instance = await this.#route(workerId));
      this.#requireCapabilities(instance, ['worker.secrets.refresh']);
      await this.#registry.provider(instance).refreshSecrets({ workerId, secrets: mounts, ...(opts.signal === undefined ? {} : { signal: opts.signal }) }, callOptions(opts.correlationId));
    });
  }

  /** Restarts a worker on the given secret material (env-mounted secrets after a rotation). */
  restartWithSecrets(workerId: string, mounts: SecretMount[], opts: { correlationId?: string } = {}): Promise<Worker> {
    return this.#track('restartWithSecrets', { ...pick(opts), workerId }, async (t) => {
      const instance = (t.instance = await this.#route(workerId));
      return this.#restartRecorded(instance, workerId, () => this.#registry.provider(instance).restartWorker({ workerId, secrets: mounts }, callOptions(opts.correlationId)));
    });
  }

  getCapacity(provider?: string, ctx: OperationContext = {}): Promise<Array<{ instance: string; capacity: CapacityInfo }>> {
    return this.#track('getCapacity', { ...pick(ctx), ...(provider === undefined ? {} : { instance: provider }) }, async () => {
      const names = provider !== undefined ? [provider] : this.#providerNames().filter((n) => this.#registry.capabilitiesOf(n)['worker.capacity'] !== undefined);
      return Promise.all(names.map(async (instance) => ({ instance, capacity: await this.#registry.provider(instance).getCapacity({}, callOptions(ctx.correlationId)) })));
    });
  }

  /**
   * The instance and labels of one worker, for authorization (its `wm.tenant` and `wm.owner`); undefined when no
   * provider has it. Answered from what the service already saw; on a miss only the owning instance is listed. It is
   * a lookup made on behalf of another operation, so it writes no log line of its own.
   */
  async describeWorker(workerId: string): Promise<{ instance: string; labels: Record<string, string> } | undefined> {
    const instance = this.#routes.get(workerId);
    const labels = this.#labels.get(workerId);
    if (instance !== undefined && labels !== undefined) return { instance, labels };
    let owner: string;
    try {
      owner = await this.#route(workerId);
    } catch (error) {
      if (error instanceof WorkerManagerError && error.code === 'WM_ERR_NOT_FOUND') return undefined;
      throw error;
    }
    const found = (await this.#registry.provider(owner).listWorkers({})).find((w) => w.workerId === workerId);
    if (found === undefined) return undefined;
    this.#remember(owner, found);
    return { instance: owner, labels: found.labels };
  }

  /**
   * Called by the registry for every event a provider plugin emits. An event about a worker that another instance
   * owns (or is creating) is dropped, logged, audited and counted: published, it would let one plugin move another's
   * worker to itself and then receive its exec, terminate and rotated secrets. Several in a row quarantine the instance.
   */
  onProviderEvent(instance: string, event: WorkerEvent): ProviderEventOutcome {
    const op = this.#inflight.get(event.workerId);
    const owner = op?.instance ?? this.#routes.get(event.workerId);
    if (owner !== undefined && owner !== instance) {
      this.#onForeignEvent(instance, owner, event);
      return 'foreign';
    }
    this.#foreignStreak.delete(instance);
    const context = this.#eventContext(event, op);
    // An event never re-routes a worker; it may only introduce one the service had not seen (created behind its back).
    if (event.type === 'WorkerCreated' && owner === undefined) this.#routes.set(event.workerId, instance);
    // A worker that ended behind the service's back may have its id reused by another tenant's create.
    if (event.type === 'WorkerTerminated') this.#labels.delete(event.workerId);
    const ledger = this.#ledger;
    if (ledger === undefined) {
      this.#publishWorkerEvent(instance, event, context.correlationId, context.tenant);
      return 'published';
    }
    // Written before it is published: a subscriber that reads the ledger after the event never sees older state.
    void ledger
      .serial(event.workerId, async () => {
        const state = ledgerStateOfEvent(event);
        // A restart ends the old process or container on purpose; that end is not the worker's.
        const restarting = op?.op === 'restartWorker' || op?.op === 'restartWithSecrets';
        const observed = state === undefined || (restarting && TERMINAL_PHASES.has(state.phase)) ? undefined : await ledger.observe(instance, event.workerId, state, event.type);
        // The end of a worker the host ended (deadline, start timeout, shutdown) is announced by the host, with its reason.
        if (observed?.record.ending !== undefined && reportsEnd(event)) return;
        this.#publishWorkerEvent(instance, event, context.correlationId, context.tenant, observed?.record.revision);
      })
      .catch((error: unknown) => {
        this.#logger.error({ instance, workerId: event.workerId, err: describe(error) }, 'could not record a provider event; publishing it anyway');
        this.#publishWorkerEvent(instance, event, context.correlationId, context.tenant);
      });
    return 'published';
  }

  /** The correlation id and tenant an event is published with: its call's when one awaits it, else the running operation's. */
  #eventContext(event: WorkerEvent, op: Tracked | undefined): { correlationId: string | undefined; tenant: string | undefined } {
    const key = `${event.workerId} ${event.type}`;
    const awaited = this.#awaitedEvents.get(key);
    if (awaited !== undefined) this.#awaitedEvents.delete(key);
    // A worker that ended will not be created any more: nothing should wait for it.
    if (event.type === 'WorkerTerminated') this.#awaitedEvents.delete(`${event.workerId} WorkerCreated`);
    return awaited ?? { correlationId: op?.correlationId, tenant: op?.tenant };
  }

  #awaitEvent(workerId: string, type: 'WorkerCreated' | 'WorkerTerminated', correlationId: string | undefined, tenant: string | undefined): void {
    const key = `${workerId} ${type}`;
    this.#awaitedEvents.delete(key);
    this.#awaitedEvents.set(key, { correlationId, tenant });
    // Bounded: a provider that never emits the event for some worker must not grow this map forever.
    if (this.#awaitedEvents.size > MAX_AWAITED_EVENTS) {
      const oldest = this.#awaitedEvents.keys().next().value;
      if (oldest !== undefined) this.#awaitedEvents.delete(oldest);
    }
  }

  #onForeignEvent(instance: string, owner: string, event: WorkerEvent): void {
    const streak = (this.#foreignStreak.get(instance) ?? 0) + 1;
    this.#foreignStreak.set(instance, streak);
    const facts = { instance, plugin: this.#pluginOf(instance) ?? null, workerId: event.workerId, owner, eventType: event.type, streak };
    this.#logger.warn(facts, 'dropped a provider event about a worker another instance owns');
    this.#audit
      ?.record({
        kind: 'plugin.foreign_event',
        principal: { kind: 'service', id: `plugin:${instance}`, source: 'host' },
        action: `event:${event.type}`,
        resource: `Worker::${event.workerId}`,
        result: 'error',
        details: facts,
      })
      .catch((error: unknown) => this.#logger.error({ ...facts, err: describe(error) }, 'could not audit a foreign provider event'));
    if (streak < FOREIGN_EVENTS_BEFORE_QUARANTINE) return;
    this.#foreignStreak.delete(instance);
    this.#registry.quarantine(
      instance,
      hostError('HOST_ERR_PLUGIN_FOREIGN_EVENTS', `after ${streak} events in a row about workers that other instances own (last: ${event.type} for '${event.workerId}', owned by '${owner}')`, {
        details: { instance, plugin: this.#pluginOf(instance) ?? null, reason: 'foreign-events', workerId: event.workerId, owner },
      }),
    );
  }

  /**
   * A create under an idempotency key: the first use creates, a repeat with the same request returns the first worker
   * (even after a host restart), and the key used for another request is a conflict.
   */
  async #createOnce(request: CreateWorkerRequest, key: string, t: Tracked): Promise<RoutedWorker> {
    const ledger = this.#ledger;
    if (ledger === undefined) return this.#create(request, t);
    const workerId = request.workerId ?? newWorkerId();
    const claim = await ledger.store.claimIdempotency({
      tenant: request.tenant ?? DEFAULT_TENANT, principal: request.owner ?? ANONYMOUS, key, requestHash: requestHash(request), workerId, expiresAt: ledger.keyExpiry(),
    });
    if (claim.status === 'conflict') {
      throw hostError('HOST_ERR_IDEMPOTENCY_CONFLICT', 'the Idempotency-Key was already used for a different request; use a new key for a new request', { details: { idempotencyKey: key } });
    }
    if (claim.status === 'replay') {
      const record = await ledger.store.get(claim.workerId);
      // A first attempt that never got a worker (refused, or failed before the provider made one) is tried again.
      if (record !== undefined && !(record.state.phase === 'Failed' && record.state.reason === CREATE_FAILED)) {
        t.instance = record.instance;
        t.workerId = record.id;
        return { instance: record.instance, worker: workerOfRecord(record) };
      }
      return this.#create({ ...request, workerId: claim.workerId }, t);
    }
    return this.#create({ ...request, workerId }, t);
  }

  async #create(request: CreateWorkerRequest, t: Tracked): Promise<RoutedWorker> {
    // Only a create that would make a worker is refused while the host shuts down: a replayed key still answers.
    this.#lifecycle?.assertAccepting();
    const instance = request.provider ?? this.#registry.defaultProviderName();
    if (instance === undefined) {
      throw hostError('HOST_ERR_INSTANCE_NOT_FOUND', 'no provider named in the request and no default provider instance configured (mark one with default: true)');
    }
    t.instance = instance;
    const spec = withOwnerLabels(request.spec, request.tenant, request.owner);
    // Every path (API, bus command, embedding) comes through here, with the labels the host added.
    assertSpecWithinLimits(spec);
    this.#requireCapabilities(instance, capabilitiesForSpec(spec));
    const workerId = (t.workerId = request.workerId ?? newWorkerId());
    // Checked before anything is recorded, with the code the provider contract would have answered.
    if (!workerIdCheck.Check(workerId)) {
      throw new WorkerManagerError('WM_ERR_VALIDATION', `workerId '${workerId}' is not valid: lowercase letters, digits and dashes, 1-63 characters, starting and ending with a letter or digit`, { details: { workerId } });
    }
    this.#inflight.set(workerId, t);
    if (this.#emitsEvents(instance)) this.#awaitEvent(workerId, 'WorkerCreated', request.correlationId, request.tenant);
    const refs = spec.secretRefs ?? [];
    const broker = this.#secrets;
    let secrets: SecretMount[] = [];
    const previous = broker?.consumersOfWorker(workerId) ?? [];
    if (refs.length > 0) {
      if (broker === undefined) {
        // Refusing is the only safe answer: running without the secrets would be worse.
        throw new WorkerManagerError('WM_ERR_CONFIGURATION', 'spec.secretRefs needs a credential instance, and none is configured', { details: { instance } });
      }
      secrets = await broker.resolve({ workerId, refs, ...pick(request, ['tenant', 'owner', 'correlationId']) });
      // Recorded before the worker exists: a crash in between leaves a consumer to prune, never a worker rotation misses.
      await broker.recordConsumers(workerId, instance, request.tenant, refs);
    }
    const ledger = this.#ledger;
    if (ledger !== undefined) {
      // Written before the provider is called, so that nothing is created that the ledger cannot find.
      const startTimeoutMs = this.#startTimeoutMs(instance);
      await ledger.admit({
        id: workerId, tenant: request.tenant ?? DEFAULT_TENANT, owner: request.owner ?? ANONYMOUS, instance, labels: spec.labels ?? {}, spec,
        ...(request.correlationId === undefined ? {} : { correlationId: request.correlationId }),
        ...(startTimeoutMs === undefined ? {} : { startTimeoutMs }),
      });
      await ledger.serial(workerId, () => ledger.observe(instance, workerId, { phase: 'Creating' }, 'create'));
    }
    let worker: Worker;
    try {
      worker = await this.#registry.provider(instance).createWorker({ workerId, spec, ...(secrets.length === 0 ? {} : { secrets }) }, callOptions(request.correlationId));
    } catch (error) {
      this.#awaitedEvents.delete(`${workerId} WorkerCreated`);
      if (ledger !== undefined) await this.#settleFailedCreate(ledger, instance, workerId, error);
      // A create refused because the id is taken must leave that worker's consumers as they were.
      if (refs.length > 0 && broker !== undefined) {
        const before = previous[0];
        await (before === undefined ? broker.forgetConsumers(workerId) : broker.recordConsumers(workerId, before.instance, before.tenant, previous.map((c) => c.ref))).catch((e: unknown) =>
          this.#logger.error({ workerId, err: describe(e) }, 'could not restore the secret consumers of a failed create'),
        );
      }
      throw error;
    }
    this.#routes.set(workerId, instance);
    this.#labels.set(workerId, worker.labels);
    if (ledger !== undefined) {
      // Events the provider emitted while creating are newer than this answer: it only moves a record still Creating.
      await ledger.serial(workerId, async () => {
        const record = await ledger.store.get(workerId);
        // With the provider's handle (pid, container id), what an operator looks for on the infrastructure: one write.
        if (record?.state.phase === 'Creating') await ledger.observe(instance, workerId, ledgerStateOfWorker(worker), 'create', worker.providerRef);
        else if (record !== undefined && worker.providerRef !== undefined && record.providerRef !== worker.providerRef) await ledger.store.update(workerId, { providerRef: worker.providerRef });
      });
    }
    if (!this.#emitsEvents(instance)) {
      this.#publishWorkerEvent(instance, { type: 'WorkerCreated', workerId, timestamp: new Date().toISOString(), ...(worker.providerRef === undefined ? {} : { providerRef: worker.providerRef }) }, request.correlationId, request.tenant);
    }
    return { instance, worker };
  }

  /**
   * Ends a worker for the host: its deadline passed, it did not start in time, or the host shuts down. The decision is
   * written first (desired Terminated, the ending, Stopping with its reason), so that whatever end is reported next
   * is recorded as `Failed` with the host's reason, and a host that stops halfway carries it out at its next start.
   * Then the provider terminates the worker with its own grace period (idempotent: a worker whose ending was already
   * decided is terminated again harmlessly). A worker whose provider already reports its end (a job that has just
   * exited, Kubernetes' own activeDeadlineSeconds) keeps that end: it is asked first, and not terminated.
   */
  #endByHost(record: WorkerRecord, request: EndingRequest): Promise<void> {
    const workerId = record.id;
    const instance = record.instance;
    const ctx: Tracked = { workerId, instance, tenant: record.tenant, ...(record.correlationId === undefined ? {} : { correlationId: record.correlationId }) };
    return this.#track(ENDING_OPS[record.ending?.reason ?? request.reason] ?? 'endWorker', ctx, async () => {
      const ledger = this.#requireLedger();
      if (record.ending === undefined && record.state.phase !== 'Pending') {
        // Its end may be on its way (an event not applied yet, a poll not made yet): a job that exited by itself, or
        // a provider that enforced the deadline itself, keeps the end it had, and is not terminated a second time.
        const state = await this.#registry.provider(instance).getWorkerStatus({ workerId }, callOptions(record.correlationId)).catch(() => undefined);
        if (state !== undefined && (state.phase === 'Terminated' || state.phase === 'Failed')) {
          await ledger.serial(workerId, () => ledger.finish(instance, workerId, ledgerStateOf(state), 'status'));
          return;
        }
      }
      const decided = await ledger.serial(workerId, async () => {
        const now = await ledger.store.get(workerId);
        if (now === undefined || TERMINAL_PHASES.has(now.state.phase)) return undefined;
        if (now.ending !== undefined) return now;
        const updated = await ledger.store.update(workerId, { desired: 'Terminated', ending: { ...request, at: new Date().toISOString() } });
        // Pending never reached a provider: there is nothing to stop, and the record ends at once.
        const to: LedgerState = now.state.phase === 'Pending' ? { phase: 'Failed', reason: request.reason } : { phase: 'Stopping', reason: request.reason };
        await ledger.observe(instance, workerId, to, request.reason);
        return updated;
      });
      if (decided === undefined || decided.state.phase === 'Pending') return;
      const ending = decided.ending ?? request;
      this.#logger.info({ instance, workerId, reason: ending.reason, message: ending.message ?? null }, 'the host is ending a worker');
      const result = await this.#registry.provider(instance).terminateWorker({ workerId }, callOptions(record.correlationId));
      const final = ledgerStateOf(result.state);
      if (TERMINAL_PHASES.has(final.phase)) await ledger.serial(workerId, () => ledger.finish(instance, workerId, final, ending.reason));
      this.#routes.delete(workerId);
      this.#labels.delete(workerId);
      await this.#forget(workerId);
    });
  }

  #restartRecorded(instance: string, workerId: string, restart: () => Promise<Worker>): Promise<Worker> {
    return this.#ledger === undefined ? restart() : this.#ledger.recordRestart(instance, workerId, restart);
  }

  /**
   * After a failed create call, the record says so and no worker is left behind: a create that timed out, or whose
   * plugin thread died mid-call, may still have made the worker, so it is terminated (idempotently) and its record
   * kept as Failed(CreateFailed). A refusal (validation, missing capability, taken id) made nothing: its record goes.
   */
  async #settleFailedCreate(ledger: WorkerLedger, instance: string, workerId: string, error: unknown): Promise<void> {
    const failure = toWorkerManagerError(error);
    if (CLIENT_CATEGORIES.has(failure.category) || failure.code === 'WM_ERR_COMPATIBILITY') {
      // The provider refused the request itself (a spec it cannot run, an id taken by a worker the ledger does not
      // know): like a request the host refused, it leaves no record, and there is nothing of ours to clean up.
      await ledger
        .serial(workerId, async () => {
          const record = await ledger.store.get(workerId);
          if (record !== undefined && (record.state.phase === 'Pending' || record.state.phase === 'Creating')) await ledger.store.delete(workerId);
        })
        .catch((e: unknown) => this.#logger.error({ instance, workerId, err: describe(e) }, 'could not forget a refused create'));
      return;
    }
    await ledger
      .serial(workerId, () => ledger.finish(instance, workerId, { phase: 'Failed', reason: CREATE_FAILED, message: `${failure.code}: ${failure.message}`.slice(0, 4096) }, 'create'))
      .catch((e: unknown) => this.#logger.error({ instance, workerId, err: describe(e) }, 'could not record a failed create'));
    // The call that failed may have killed its thread; a terminate sent at once can land on that same dying thread and
    // fail with it. Retried (transient failures only) until a fresh thread answers, which waits out the restart.
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#registry.provider(instance).terminateWorker({ workerId });
        return;
      } catch (e) {
        const failure = toWorkerManagerError(e);
        if (!failure.transient || attempt >= CLEANUP_RETRIES.length) {
          // Left for the next start's adoption, which terminates a live worker whose record is finished.
          this.#logger.error({ instance, workerId, err: describe(e), attempts: attempt + 1 }, 'could not clean up after a failed create');
          return;
        }
        await sleep(CLEANUP_RETRIES[attempt]);
      }
    }
  }





  /**
   * Runs one public operation: exactly one JSON log line when it settles (info when it succeeded, warn for a client
   * error, error otherwise) and one observer record. The error itself is rethrown untouched.
   */
  async #track<T>(op: string, t: Tracked, fn: (t: Tracked) => Promise<T>): Promise<T> {
    const started = performance.now();
    let failure: WorkerManagerError | undefined;
    t.op = op;
    // A read of the worker never replaces the operation already running on it (a create whose events need its context).
    if (t.workerId !== undefined && !this.#inflight.has(t.workerId)) this.#inflight.set(t.workerId, t);
    try {
      return await fn(t);
    } catch (error) {
      failure = toWorkerManagerError(error);
      throw error;
    } finally {
      if (t.workerId !== undefined && this.#inflight.get(t.workerId) === t) this.#inflight.delete(t.workerId);
      const latencyMs = Math.round((performance.now() - started) * 1000) / 1000;
      const plugin = this.#pluginOf(t.instance);
      const line = {
        op, instance: t.instance ?? null, plugin: plugin ?? null, workerId: t.workerId ?? null, correlationId: t.correlationId ?? null, tenant: t.tenant ?? null,
        result: failure === undefined ? 'ok' : 'error', category: failure?.category ?? null, code: failure?.code ?? null, latencyMs,
      };
      if (failure === undefined) this.#logger.info(line, `${op} ok`);
      else if (CLIENT_CATEGORIES.has(failure.category)) this.#logger.warn({ ...line, error: failure.message }, `${op} failed`);
      else this.#logger.error({ ...line, error: failure.message }, `${op} failed`);
      try {
        this.#observer?.({
          op, result: line.result as 'ok' | 'error', latencyMs,
          ...(t.instance === undefined ? {} : { instance: t.instance }),
          ...(plugin === undefined ? {} : { plugin }),
          ...(t.workerId === undefined ? {} : { workerId: t.workerId }),
          ...(t.correlationId === undefined ? {} : { correlationId: t.correlationId }),
          ...(t.tenant === undefined ? {} : { tenant: t.tenant }),
          ...(failure === undefined ? {} : { category: failure.category, code: failure.code }),
        });
      } catch {
        // An observer must never change the outcome of the operation it watches.
      }
    }
  }

  /** Learns a worker from a listing. A listing never re-routes a worker the service knows on another instance. */
  #remember(instance: string, worker: { workerId: string; labels: Record<string, string> }): void {
    const known = this.#routes.get(worker.workerId);
    if (known !== undefined && known !== instance) return;
    this.#routes.set(worker.workerId, instance);
    this.#labels.set(worker.workerId, worker.labels);
  }

  #pluginOf(instance: string | undefined): string | undefined {
    if (instance === undefined) return undefined;
    try {
      return this.#registry.instance(instance).plugin?.pkg?.metadata.id;
    } catch {
      return undefined;
    }
  }

  async #forget(workerId: string): Promise<void> {
    try {
      await this.#secrets?.forgetConsumers(workerId);
    } catch (error) {
      // The worker is gone either way; a stale consumer is pruned at the next start.
      this.#logger.error({ workerId, err: describe(error) }, 'could not forget the secret consumers of a terminated worker');
    }
  }

  #requireCapabilities(instance: string, needed: readonly string[]): void {
    const have = this.#registry.capabilitiesOf(instance);
    const missing = needed.filter((c) => have[c] === undefined);
    if (missing.length > 0) {
      throw new WorkerManagerError('WM_ERR_COMPATIBILITY', `provider instance '${instance}' does not support ${missing.join(', ')}`, { details: { instance, missing } });
    }
  }

  /**
   * The instance that owns a worker. The route table is only a cache: on a miss (a worker created before a restart
   * whose listing failed, or by another path), the running providers are asked, since they hold the truth.
   */
  async #route(workerId: string): Promise<string> {
    const known = this.#routes.get(workerId);
    if (known !== undefined) return known;
    // The ledger binds a worker to the instance that created it; only a worker it does not know is searched for.
    const recorded = (await this.#ledger?.openStore?.get(workerId))?.instance;
    if (recorded !== undefined) return recorded;
    const names = this.#providerNames();
    const answers = await Promise.allSettled(names.map((name) => this.#registry.provider(name).getWorkerStatus({ workerId })));
    const index = answers.findIndex((a) => a.status === 'fulfilled');
    const found = index === -1 ? undefined : names[index];
    if (found !== undefined) {
      this.#routes.set(workerId, found);
      return found;
    }
    const failure = answers.find((a): a is PromiseRejectedResult => a.status === 'rejected' && !(a.reason instanceof WorkerManagerError && a.reason.code === 'WM_ERR_NOT_FOUND'));
    // A provider that could not answer may still own the worker: say so, rather than claim it does not exist.
    if (failure !== undefined) throw failure.reason;
    throw new WorkerManagerError('WM_ERR_NOT_FOUND', `no worker '${workerId}'`, { details: { workerId } });
  }

  #providerNames(): string[] {
    return this.#registry.instances().filter((i) => i.state === 'running' && i.plugin?.pkg?.metadata.kind === 'provider').map((i) => i.name);
  }

  #emitsEvents(instance: string): boolean {
    return this.#registry.capabilitiesOf(instance)['worker.events'] !== undefined;
  }

  #publishWorkerEvent(instance: string, event: WorkerEvent, correlationId: string | undefined, tenant?: string, revision?: number): void {
    const data = revision === undefined ? { instance, ...event } : { instance, ...event, revision };
    const envelope = createEvent(this.#subjects, this.#hostId, EVENT_SUBJECT[event.type], data, { subject: event.workerId, correlationId, tenant });
    // Worker operations never wait for (or fail because of) the bus.
    this.#bus.publish(envelope).catch((error: unknown) => this.#logger.error({ err: describe(error), subject: envelope.busSubject }, 'event publish failed'));
  }
}

/**
 * The spec with the host's ownership labels. A caller may repeat them (a spec read back from a worker) but not set them
 * to anything else: policies and filters trust these labels.
 */
function withOwnerLabels(spec: RuntimeSpec, tenant: string | undefined, owner: string | undefined): RuntimeSpec {
  const labels = { ...spec.labels };
  for (const [label, value] of [[TENANT_LABEL, tenant], [OWNER_LABEL, owner]] as const) {
    const given = labels[label];
    if (given !== undefined && given !== value) {
      throw new WorkerManagerError('WM_ERR_VALIDATION', `label '${label}' is set by the host from the caller's identity and cannot be chosen`, { details: { label } });
    }
    if (value !== undefined && value.length > MAX_LABEL_VALUE_LENGTH) {
      // Refused here rather than by the contract check, whose message would blame a label the caller never wrote.
      throw new WorkerManagerError('WM_ERR_VALIDATION', `label '${label}' holds the caller's ${label === TENANT_LABEL ? 'tenant' : 'principal id'}, which is longer than a label value may be (${MAX_LABEL_VALUE_LENGTH} characters)`, {
        details: { path: `/spec/labels/${label}`, label },
      });
    }
    if (value !== undefined) labels[label] = value;
  }
  return spec.labels === undefined && Object.keys(labels).length === 0 ? spec : { ...spec, labels };
}

/** The context fields that are set (all, or the named ones), for spreading into requests without undefined values. */
function pick(ctx: OperationContext, keys: ReadonlyArray<keyof OperationContext> = ['correlationId', 'tenant', 'owner']): OperationContext {
  const out: OperationContext = {};
  for (const k of keys) {
    const v = ctx[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}

const workerIdCheck = Compile(WorkerId);

function newWorkerId(): string {
  return `w-${randomUUID().slice(0, 18)}`;
}

function callOptions(correlationId: string | undefined): CallOptions {
  return correlationId === undefined ? {} : { correlationId };
}

function describe(error: unknown): { code?: string; message: string } {
  return error instanceof WorkerManagerError ? { code: error.code, message: error.message } : { message: error instanceof Error ? error.message : String(error) };
}
