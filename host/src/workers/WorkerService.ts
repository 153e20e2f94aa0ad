import { randomUUID } from 'node:crypto';
import {
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
import type { EventBus } from '../bus/EventBus.ts';
import { createEvent } from '../bus/createEvent.ts';
import type { SubjectName, Subjects } from '../bus/subjects.ts';
import { hostError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { OperationObserver } from '../observability/OperationObserver.ts';
import type { PluginRegistry } from '../plugins/PluginRegistry.ts';
import type { SecretBroker } from '../secrets/SecretBroker.ts';

/** Label holding the tenant a worker was created for. */
export const TENANT_LABEL = 'wm.tenant';
/** Label holding the principal id that created a worker. */
export const OWNER_LABEL = 'wm.owner';

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
}

/** What one operation's log line and observer record say; filled in as the operation learns it (the instance after routing). */
interface Tracked extends OperationContext {
  instance?: string;
  workerId?: string;
}

const EVENT_SUBJECT: Record<WorkerEvent['type'], SubjectName> = {
  WorkerCreated: 'workerCreated',
  WorkerStateChanged: 'workerStateChanged',
  WorkerTerminated: 'workerTerminated',
  WorkerFailed: 'workerFailed',
};

const CLIENT_CATEGORIES = new Set(['ClientValidation', 'Authorization']);

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
  readonly #routes = new Map<string, string>();
  /** Labels of the workers seen at create, start and list; they never change after create, so ownership can be read here. */
  readonly #labels = new Map<string, Record<string, string>>();
  readonly #idempotency = new Map<string, Promise<RoutedWorker>>();
  /** Context of the operation running on each worker, so the events its provider emits meanwhile carry its correlation id. */
  readonly #inflight = new Map<string, Tracked>();

  constructor(deps: WorkerServiceDeps) {
    this.#registry = deps.registry;
    this.#bus = deps.bus;
    this.#subjects = deps.subjects;
    this.#hostId = deps.hostId;
    this.#logger = deps.logger;
    this.#secrets = deps.secrets;
    this.#observer = deps.observer;
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
      } catch (error) {
        this.#logger.warn({ instance: inst.name, err: describe(error) }, 'could not list existing workers');
      }
    }
    // Only instances that answered are pruned: a provider that is down may still run its workers.
    const gone = new Set((this.#secrets?.allConsumers() ?? []).filter((c) => listed.get(c.instance)?.has(c.workerId) === false).map((c) => c.workerId));
    for (const workerId of gone) await this.#secrets?.forgetConsumers(workerId);
    if (gone.size > 0) this.#logger.info({ workers: [...gone] }, 'forgot secret consumers of workers that no longer exist');
  }

  createWorker(request: CreateWorkerRequest): Promise<RoutedWorker> {
    const t: Tracked = { ...pick(request), ...(request.workerId === undefined ? {} : { workerId: request.workerId }) };
    return this.#track('createWorker', t, () => {
      const key = request.idempotencyKey;
      if (key === undefined) return this.#create(request, t);
      const first = this.#idempotency.get(key);
      if (first !== undefined) {
        return first.then((r) => {
          t.instance = r.instance;
          t.workerId = r.worker.workerId;
          return r;
        });
      }
      const pending = this.#create(request, t);
      this.#idempotency.set(key, pending);
      // A failed create may be retried with the same key.
      pending.catch(() => this.#idempotency.delete(key));
      return pending;
    });
  }

  terminateWorker(
    workerId: string,
    options: OperationContext & { gracePeriodMs?: number } = {},
  ): Promise<{ instance: string | undefined; state: WorkerState; alreadyGone: boolean }> {
    return this.#track('terminateWorker', { ...pick(options), workerId }, async (t) => {
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
      const params = options.gracePeriodMs === undefined ? { workerId } : { workerId, gracePeriodMs: options.gracePeriodMs };
      const result = await this.#registry.provider(instance).terminateWorker(params, callOptions(options.correlationId));
      this.#routes.delete(workerId);
      this.#labels.delete(workerId);
      await this.#forget(workerId);
      if (!this.#emitsEvents(instance)) {
        this.#publishWorkerEvent(instance, { type: 'WorkerTerminated', workerId, timestamp: new Date().toISOString() }, options.correlationId, options.tenant);
      }
      return { instance, state: result.state, alreadyGone: result.alreadyGone };
    });
  }

  getStatus(workerId: string, ctx: OperationContext = {}): Promise<{ instance: string; state: WorkerState }> {
    return this.#track('getStatus', { ...pick(ctx), workerId }, async (t) => {
      const instance = (t.instance = await this.#route(workerId));
      return { instance, state: await this.#registry.provider(instance).getWorkerStatus({ workerId }, callOptions(ctx.correlationId)) };
    });
  }

  /**
   * Workers of one provider instance, or of all running ones. With a tenant in `ctx`, only that tenant's workers (the
   * `wm.tenant` label): a tenant may list, but never see another tenant's workers.
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
      if (this.#secrets === undefined || first === undefined) return this.#registry.provider(instance).restartWorker({ workerId }, callOptions(ctx.correlationId));
      const secrets = await this.#secrets.resolve({ workerId, tenant: first.tenant, refs: consumers.map((c) => c.ref), ...pick(ctx, ['correlationId', 'owner']) });
      return this.#registry.provider(instance).restartWorker({ workerId, secrets }, callOptions(ctx.correlationId));
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
      return this.#registry.provider(instance).restartWorker({ workerId, secrets: mounts }, callOptions(opts.correlationId));
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

  /** Called by the registry for every event a provider plugin emits. */
  onProviderEvent(instance: string, event: WorkerEvent): void {
    if (event.type === 'WorkerCreated') this.#routes.set(event.workerId, instance);
    // A worker that ended behind the service's back may have its id reused by another tenant's create.
    if (event.type === 'WorkerTerminated') this.#labels.delete(event.workerId);
    const op = this.#inflight.get(event.workerId);
    this.#publishWorkerEvent(instance, event, op?.correlationId, op?.tenant);
  }

  async #create(request: CreateWorkerRequest, t: Tracked): Promise<RoutedWorker> {
    const instance = request.provider ?? this.#registry.defaultProviderName();
    if (instance === undefined) {
      throw hostError('HOST_ERR_INSTANCE_NOT_FOUND', 'no provider named in the request and no default provider instance configured (mark one with default: true)');
    }
    t.instance = instance;
    const spec = withOwnerLabels(request.spec, request.tenant, request.owner);
    this.#requireCapabilities(instance, capabilitiesForSpec(spec));
    const workerId = (t.workerId = request.workerId ?? `w-${randomUUID().slice(0, 18)}`);
    this.#inflight.set(workerId, t);
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
    let worker: Worker;
    try {
      worker = await this.#registry.provider(instance).createWorker({ workerId, spec, ...(secrets.length === 0 ? {} : { secrets }) }, callOptions(request.correlationId));
    } catch (error) {
      // A create refused because the id is taken must leave that worker's consumers as they were.
      if (refs.length > 0 && broker !== undefined) {
        const before = previous[0];
        await (before === undefined ? broker.forgetConsumers(workerId) : broker.recordConsumers(workerId, before.instance, before.tenant, previous.map((c) => c.ref))).catch((e: unknown) =>
          this.#logger.error({ workerId, err: describe(e) }, 'could not restore the secret consumers of a failed create'),
        );
      }
      throw error;
    }
    this.#remember(instance, worker);
    if (!this.#emitsEvents(instance)) {
      this.#publishWorkerEvent(instance, { type: 'WorkerCreated', workerId, timestamp: new Date().toISOString(), ...(worker.providerRef === undefined ? {} : { providerRef: worker.providerRef }) }, request.correlationId, request.tenant);
    }
    return { instance, worker };
  }

  /**
   * Runs one public operation: exactly one JSON log line when it settles (info when it succeeded, warn for a client
   * error, error otherwise) and one observer record. The error itself is rethrown untouched.
   */
  async #track<T>(op: string, t: Tracked, fn: (t: Tracked) => Promise<T>): Promise<T> {
    const started = performance.now();
    let failure: WorkerManagerError | undefined;
    if (t.workerId !== undefined) this.#inflight.set(t.workerId, t);
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

  #remember(instance: string, worker: { workerId: string; labels: Record<string, string> }): void {
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

  #publishWorkerEvent(instance: string, event: WorkerEvent, correlationId: string | undefined, tenant?: string): void {
    const envelope = createEvent(this.#subjects, this.#hostId, EVENT_SUBJECT[event.type], { instance, ...event }, { subject: event.workerId, correlationId, tenant });
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

function callOptions(correlationId: string | undefined): CallOptions {
  return correlationId === undefined ? {} : { correlationId };
}

function describe(error: unknown): { code?: string; message: string } {
  return error instanceof WorkerManagerError ? { code: error.code, message: error.message } : { message: error instanceof Error ? error.message : String(error) };
}
