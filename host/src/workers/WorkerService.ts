import { randomUUID } from 'node:crypto';
import {
  WorkerManagerError,
  capabilitiesForSpec,
  type CapacityInfo,
  type ExecutionResult,
  type LogChunk,
  type LogOptions,
  type RuntimeSpec,
  type Worker,
  type WorkerEvent,
  type WorkerState,
} from '@worker-manager/plugin-sdk';
import type { EventBus } from '../bus/EventBus.ts';
import { createEvent } from '../bus/createEvent.ts';
import type { SubjectName, Subjects } from '../bus/subjects.ts';
import { hostError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { PluginRegistry } from '../plugins/PluginRegistry.ts';

/** A request to create a worker. */
export interface CreateWorkerRequest {
  /** Provider instance; the default provider instance when absent. */
  provider?: string;
  /** Chosen by the caller, or generated. */
  workerId?: string;
  spec: RuntimeSpec;
  /** Repeating a create with the same key returns the first worker instead of creating another. */
  idempotencyKey?: string;
  correlationId?: string;
  tenant?: string;
}

/** A worker and the instance that runs it. */
export interface RoutedWorker {
  instance: string;
  worker: Worker;
}

const EVENT_SUBJECT: Record<WorkerEvent['type'], SubjectName> = {
  WorkerCreated: 'workerCreated',
  WorkerStateChanged: 'workerStateChanged',
  WorkerTerminated: 'workerTerminated',
  WorkerFailed: 'workerFailed',
};

/**
 * Routes worker operations to provider instances. It checks what the registry negotiated before calling a plugin,
 * remembers which instance owns which worker (rebuilt from the providers' own listings at start, since the
 * infrastructure is the source of truth), and turns provider events into bus events.
 */
export class WorkerService {
  readonly #registry: PluginRegistry;
  readonly #bus: EventBus;
  readonly #subjects: Subjects;
  readonly #hostId: string;
  readonly #logger: Logger;
  readonly #routes = new Map<string, string>();
  readonly #idempotency = new Map<string, Promise<RoutedWorker>>();

  constructor(deps: { registry: PluginRegistry; bus: EventBus; subjects: Subjects; hostId: string; logger: Logger }) {
    this.#registry = deps.registry;
    this.#bus = deps.bus;
    this.#subjects = deps.subjects;
    this.#hostId = deps.hostId;
    this.#logger = deps.logger;
  }

  /** Adopts the workers each running provider already has (after a host or plugin restart). */
  async start(): Promise<void> {
    for (const inst of this.#registry.instances()) {
      if (inst.state !== 'running' || inst.plugin?.pkg?.metadata.kind !== 'provider') continue;
      try {
        const workers = await this.#registry.provider(inst.name).listWorkers({});
        for (const w of workers) this.#routes.set(w.workerId, inst.name);
        if (workers.length > 0) this.#logger.info({ instance: inst.name, adopted: workers.length }, 'adopted existing workers');
      } catch (error) {
        this.#logger.warn({ instance: inst.name, err: describe(error) }, 'could not list existing workers');
      }
    }
  }

  async createWorker(request: CreateWorkerRequest): Promise<RoutedWorker> {
    const key = request.idempotencyKey;
    if (key !== undefined) {
      const first = this.#idempotency.get(key);
      if (first !== undefined) return first;
      const pending = this.#create(request);
      this.#idempotency.set(key, pending);
      // A failed create may be retried with the same key.
      pending.catch(() => this.#idempotency.delete(key));
      return pending;
    }
    return this.#create(request);
  }

  async terminateWorker(workerId: string, options: { gracePeriodMs?: number; correlationId?: string } = {}): Promise<{ instance: string | undefined; state: WorkerState; alreadyGone: boolean }> {
    let instance: string;
    try {
      instance = await this.#route(workerId);
    } catch (error) {
      // Terminating an unknown worker succeeds: it is as gone as it will ever be (idempotent terminate).
      if (error instanceof WorkerManagerError && error.code === 'WM_ERR_NOT_FOUND') return { instance: undefined, state: { phase: 'Terminated' }, alreadyGone: true };
      throw error;
    }
    const params = options.gracePeriodMs === undefined ? { workerId } : { workerId, gracePeriodMs: options.gracePeriodMs };
    const result = await this.#registry.provider(instance).terminateWorker(params, this.#callOptions(options.correlationId));
    this.#routes.delete(workerId);
    if (!this.#emitsEvents(instance)) {
      this.#publishWorkerEvent(instance, { type: 'WorkerTerminated', workerId, timestamp: new Date().toISOString() }, options.correlationId);
    }
    return { instance, state: result.state, alreadyGone: result.alreadyGone };
  }

  async getStatus(workerId: string): Promise<{ instance: string; state: WorkerState }> {
    const instance = await this.#route(workerId);
    return { instance, state: await this.#registry.provider(instance).getWorkerStatus({ workerId }) };
  }

  /** Workers of one provider instance, or of all running ones. */
  async listWorkers(filter: { provider?: string; labels?: Record<string, string> } = {}): Promise<RoutedWorker[]> {
    const names = filter.provider !== undefined ? [filter.provider] : this.#providerNames();
    const out: RoutedWorker[] = [];
    for (const name of names) {
      const workers = await this.#registry.provider(name).listWorkers(filter.labels === undefined ? {} : { labels: filter.labels });
      for (const worker of workers) {
        this.#routes.set(worker.workerId, name);
        out.push({ instance: name, worker });
      }
    }
    return out;
  }

  async getLogs(workerId: string, options: LogOptions = {}): Promise<AsyncIterable<LogChunk> & { cancel(): void }> {
    const instance = await this.#route(workerId);
    if (options.follow === true) this.#requireCapabilities(instance, ['worker.logs.follow']);
    return this.#registry.provider(instance).getLogs({ workerId, options });
  }

  async executeCommand(workerId: string, command: string[], timeoutMs?: number): Promise<ExecutionResult> {
    const instance = await this.#route(workerId);
    const params = timeoutMs === undefined ? { workerId, command } : { workerId, command, timeoutMs };
    // The call deadline must outlast the command's own timeout, or the sandbox would cut a legitimate wait short.
    return this.#registry.provider(instance).executeCommand(params, timeoutMs === undefined ? {} : { timeoutMs: timeoutMs + 5_000 });
  }

  async pauseWorker(workerId: string): Promise<WorkerState> {
    return this.#registry.provider(await this.#route(workerId)).pauseWorker({ workerId });
  }

  async resumeWorker(workerId: string): Promise<WorkerState> {
    return this.#registry.provider(await this.#route(workerId)).resumeWorker({ workerId });
  }

  async restartWorker(workerId: string): Promise<Worker> {
    return this.#registry.provider(await this.#route(workerId)).restartWorker({ workerId });
  }

  async getCapacity(provider?: string): Promise<Array<{ instance: string; capacity: CapacityInfo }>> {
    const names = provider !== undefined ? [provider] : this.#providerNames().filter((n) => this.#registry.capabilitiesOf(n)['worker.capacity'] !== undefined);
    return Promise.all(names.map(async (instance) => ({ instance, capacity: await this.#registry.provider(instance).getCapacity({}) })));
  }

  /** Called by the registry for every event a provider plugin emits. */
  onProviderEvent(instance: string, event: WorkerEvent): void {
    if (event.type === 'WorkerCreated') this.#routes.set(event.workerId, instance);
    this.#publishWorkerEvent(instance, event, undefined);
  }

  async #create(request: CreateWorkerRequest): Promise<RoutedWorker> {
    const instance = request.provider ?? this.#registry.defaultProviderName();
    if (instance === undefined) {
      throw hostError('HOST_ERR_INSTANCE_NOT_FOUND', 'no provider named in the request and no default provider instance configured (mark one with default: true)');
    }
    if ((request.spec.secretRefs?.length ?? 0) > 0) {
      // Until the credential layer exists, refusing is the only safe answer: running without the secrets would be worse.
      throw new WorkerManagerError('WM_ERR_CONFIGURATION', 'spec.secretRefs needs a credential instance, and none is configured', { details: { instance } });
    }
    this.#requireCapabilities(instance, capabilitiesForSpec(request.spec));
    const workerId = request.workerId ?? `w-${randomUUID().slice(0, 18)}`;
    const worker = await this.#registry.provider(instance).createWorker({ workerId, spec: request.spec }, this.#callOptions(request.correlationId));
    this.#routes.set(worker.workerId, instance);
    if (!this.#emitsEvents(instance)) {
      this.#publishWorkerEvent(instance, { type: 'WorkerCreated', workerId, timestamp: new Date().toISOString(), ...(worker.providerRef === undefined ? {} : { providerRef: worker.providerRef }) }, request.correlationId, request.tenant);
    }
    this.#logger.info({ op: 'createWorker', instance, workerId, correlationId: request.correlationId, result: 'ok' }, 'worker created');
    return { instance, worker };
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

  #callOptions(correlationId: string | undefined): { correlationId?: string } {
    return correlationId === undefined ? {} : { correlationId };
  }

  #publishWorkerEvent(instance: string, event: WorkerEvent, correlationId: string | undefined, tenant?: string): void {
    const envelope = createEvent(this.#subjects, this.#hostId, EVENT_SUBJECT[event.type], { instance, ...event }, { subject: event.workerId, correlationId, tenant });
    // Worker operations never wait for (or fail because of) the bus.
    this.#bus.publish(envelope).catch((error: unknown) => this.#logger.error({ err: describe(error), subject: envelope.busSubject }, 'event publish failed'));
  }
}

function describe(error: unknown): { code?: string; message: string } {
  return error instanceof WorkerManagerError ? { code: error.code, message: error.message } : { message: error instanceof Error ? error.message : String(error) };
}
