import type { ContainerGroup, ContainerInstanceManagementClient } from '@azure/arm-containerinstance';
import {
  isFinalState,
  WorkerManagerError,
  type CallContext,
  type LogChunk,
  type LogOptions,
  type PluginContext,
  type ProviderHandlers,
  type RuntimeSpec,
  type SecretMount,
  type Worker,
  type WorkerState,
} from '@worker-manager/plugin-sdk';
import type { ArmConnection } from './armClient.ts';
import { isNotFound, toWorkerError, type CallFacts } from './armErrors.ts';
import type { ResolvedConfig } from './config.ts';
import { CONTAINER_NAME, planGroup } from './groupPlan.ts';
import { stateOfGroup } from './groupState.ts';
import { readLogs } from './readLogs.ts';
import { groupName, isOwned, labelsOf, specHashOf, TAG, workerTags } from './tags.ts';

const notFound = (workerId: string): WorkerManagerError => new WorkerManagerError('WM_ERR_NOT_FOUND', `worker '${workerId}' does not exist`, { details: { workerId } });

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });

/**
 * The handlers of one plugin thread. ARM is the truth: each worker is one container group, named from a hash of host,
 * instance and worker id and tagged with them, so any thread (and a restarted host) finds it again. Nothing is kept in
 * memory but the creates this thread has in flight.
 */
export class AciProvider {
  readonly #ctx: PluginContext<unknown>;
  readonly #config: ResolvedConfig;
  readonly #arm: ArmConnection;
  readonly #client: ContainerInstanceManagementClient;
  /** Creates in flight in this thread, by worker id: a concurrent create with the same id waits for the first. */
  readonly #creating = new Map<string, Promise<Worker>>();

  constructor(ctx: PluginContext<unknown>, config: ResolvedConfig, arm: ArmConnection) {
    this.#ctx = ctx;
    this.#config = config;
    this.#arm = arm;
    this.#client = arm.client;
  }

  handlers(): ProviderHandlers {
    return {
      createWorker: (p, call) => this.createWorker(p.workerId, p.spec, p.secrets ?? [], call),
      terminateWorker: (p) => this.terminateWorker(p.workerId),
      getWorkerStatus: (p) => this.getWorkerStatus(p.workerId),
      listWorkers: (p) => this.listWorkers(p.labels ?? {}),
      getLogs: (p, call) => this.getLogs(p.workerId, p.options ?? {}, call),
      restartWorker: (p, call) => this.restartWorker(p.workerId, p.secrets, call),
      close: () => this.#arm.close(),
    };
  }

  #facts(operation: string, workerId?: string, extra: readonly string[] = []): CallFacts {
    return { operation, ...(workerId === undefined ? {} : { workerId }), redact: [...this.#arm.redact, ...extra] };
  }

  #name(workerId: string): string {
    return groupName(this.#config.namePrefix, this.#ctx.owner, workerId);
  }

  /** The container group of the worker's name with its instance view, whoever owns it; undefined when there is none. */
  async #readName(workerId: string, signal?: AbortSignal): Promise<ContainerGroup | undefined> {
    try {
      return await this.#client.containerGroups.get(this.#config.resourceGroup, this.#name(workerId), signal === undefined ? {} : { abortSignal: signal });
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw toWorkerError(error, this.#facts('read container group', workerId));
    }
  }

  #ours(group: ContainerGroup | undefined, workerId: string): group is ContainerGroup {
    return group !== undefined && isOwned(group.tags, this.#ctx.owner) && group.tags?.[TAG.workerId] === workerId;
  }

  /** The worker's container group with its instance view, or undefined when it does not exist (or is not ours). */
  async #read(workerId: string, signal?: AbortSignal): Promise<ContainerGroup | undefined> {
    const group = await this.#readName(workerId, signal);
    return this.#ours(group, workerId) ? group : undefined;
  }

  #toWorker(group: ContainerGroup, state = stateOfGroup(group)): Worker {
    return {
      workerId: group.tags?.[TAG.workerId] ?? '',
      state,
      labels: labelsOf(group.tags),
      createdAt: group.tags?.[TAG.createdAt] ?? new Date(0).toISOString(),
      ...(group.id === undefined ? {} : { providerRef: group.id }),
    };
  }

  // ---------------------------------------------------------------- create

  createWorker(workerId: string, spec: RuntimeSpec, secrets: readonly SecretMount[], call: CallContext): Promise<Worker> {
    const inFlight = this.#creating.get(workerId);
    if (inFlight !== undefined) {
      const again = (): Promise<Worker> => this.#create(workerId, spec, secrets, call);
      return inFlight.then(again, again);
    }
    const work = this.#create(workerId, spec, secrets, call).finally(() => this.#creating.delete(workerId));
    this.#creating.set(workerId, work);
    return work;
  }

  /**
   * Sends the PUT and returns once ARM accepted it (201 with an `Azure-AsyncOperation` to poll): the long-running
   * operation is left to ARM, and the worker's state is read from the group from then on. A group that exists with
   * the same spec hash is this worker (a repeated create); with another, the id is taken.
   */
  async #create(workerId: string, spec: RuntimeSpec, secrets: readonly SecretMount[], call: CallContext): Promise<Worker> {
    const hash = specHashOf(spec, secrets);
    const existing = await this.#readName(workerId, call.signal);
    if (existing !== undefined) return this.#same(existing, workerId, hash);
    const createdAt = new Date().toISOString();
    const group = planGroup(workerId, spec, secrets, workerTags(this.#ctx.owner, workerId, spec, hash, createdAt), this.#config);
    const values = secrets.map((s) => s.value);
    try {
      await this.#client.containerGroups.beginCreateOrUpdate(this.#config.resourceGroup, this.#name(workerId), group, { abortSignal: call.signal });
    } catch (error) {
      // The SDK polls the operation once inside begin*: an operation that failed at once rejects here although ARM
      // accepted the group (whose provisioningState now says Failed, a state to report, not an error). A 409 is
      // another thread's PUT of the same group. Either way the group that exists is the answer.
      const now = await this.#readName(workerId, call.signal).catch(() => undefined);
      if (now !== undefined) return this.#same(now, workerId, hash);
      throw toWorkerError(error, this.#facts('create container group', workerId, values));
    }
    this.#ctx.logger.info('azure-aci provider: container group accepted', { workerId, group: this.#name(workerId) });
    const accepted = await this.#read(workerId, call.signal);
    if (accepted === undefined) throw new WorkerManagerError('WM_ERR_PROVIDER_SPECIFIC', `worker '${workerId}': ARM accepted the container group but does not return it`, { details: { workerId } });
    return this.#toWorker(accepted);
  }

  /** A group found under the worker's name: this worker when ours with the same spec; never overwritten otherwise. */
  #same(group: ContainerGroup, workerId: string, hash: string): Worker {
    if (!this.#ours(group, workerId) || group.tags?.[TAG.specHash] !== hash) {
      throw new WorkerManagerError('WM_ERR_ALREADY_EXISTS', `worker '${workerId}' exists with a different spec`, { details: { workerId } });
    }
    return this.#toWorker(group);
  }

  // ---------------------------------------------------------------- read

  async getWorkerStatus(workerId: string): Promise<WorkerState> {
    const group = await this.#read(workerId);
    if (group === undefined) throw notFound(workerId);
    return stateOfGroup(group);
  }

  /**
   * Lists the resource group and keeps the container groups tagged with this host and instance (ARM's list has no tag
   * filter for container groups), then reads each match for its instance view, which a listing does not carry.
   */
  async listWorkers(labels: Record<string, string>): Promise<Worker[]> {
    const owned: ContainerGroup[] = [];
    try {
      for await (const group of this.#client.containerGroups.listByResourceGroup(this.#config.resourceGroup)) {
        if (!isOwned(group.tags, this.#ctx.owner)) continue;
        const have = labelsOf(group.tags);
        if (Object.entries(labels).every(([k, v]) => have[k] === v)) owned.push(group);
      }
    } catch (error) {
      throw toWorkerError(error, this.#facts('list container groups'));
    }
    const read = await Promise.all(owned.map((g) => this.#read(g.tags![TAG.workerId]!)));
    return read.filter((g): g is ContainerGroup => g !== undefined).map((g) => this.#toWorker(g));
  }

  // ---------------------------------------------------------------- terminate

  /**
   * Deletes the container group, which stops its container. ACI has no grace period on deletion, so `gracePeriodMs`
   * has nothing to set. A worker that had ended keeps its final state in the answer.
   */
  async terminateWorker(workerId: string): Promise<{ workerId: string; state: WorkerState; alreadyGone: boolean }> {
    const group = await this.#read(workerId);
    if (group === undefined) return { workerId, state: { phase: 'Terminated' }, alreadyGone: true };
    const before = stateOfGroup(group);
    try {
      await this.#client.containerGroups.beginDeleteAndWait(this.#config.resourceGroup, this.#name(workerId), { updateIntervalInMs: this.#config.pollIntervalMs });
    } catch (error) {
      if (!isNotFound(error)) throw toWorkerError(error, this.#facts('delete container group', workerId));
    }
    this.#ctx.logger.info('azure-aci provider: container group deleted', { workerId });
    if (isFinalState(before)) return { workerId, state: before, alreadyGone: true };
    return { workerId, state: { phase: 'Terminated' }, alreadyGone: false };
  }

  // ---------------------------------------------------------------- logs

  async getLogs(workerId: string, options: LogOptions, call: CallContext): Promise<AsyncIterable<LogChunk>> {
    const name = this.#name(workerId);
    const content = async (): Promise<string | undefined> => {
      try {
        const logs = await this.#client.containers.listLogs(this.#config.resourceGroup, name, CONTAINER_NAME, { timestamps: true, abortSignal: call.signal });
        return logs.content ?? '';
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw toWorkerError(error, this.#facts('read logs', workerId));
      }
    };
    if ((await this.#read(workerId, call.signal)) === undefined) throw notFound(workerId);
    const first = await content();
    if (first === undefined) throw notFound(workerId);
    const source = {
      state: async () => {
        const group = await this.#read(workerId, call.signal);
        return group === undefined ? undefined : stateOfGroup(group);
      },
      content,
    };
    return readLogs(source, first, options, this.#config.pollIntervalMs, call.signal);
  }

  // ---------------------------------------------------------------- restart

  /**
   * Restarts the container group in place (ACI's restart: same group, same secure environment) and waits for the
   * container to run again. With `secrets`, the group is updated instead with the new secure values, which ACI applies
   * by recreating the container. Either way the long-running operation is awaited, then the state is polled.
   */
  async restartWorker(workerId: string, secrets: readonly SecretMount[] | undefined, call: CallContext): Promise<Worker> {
    const group = await this.#read(workerId, call.signal);
    if (group === undefined) throw notFound(workerId);
    const name = this.#name(workerId);
    const values = (secrets ?? []).map((s) => s.value);
    try {
      if (secrets !== undefined && secrets.length > 0) await this.#updateSecrets(group, workerId, secrets, call);
      else await this.#client.containerGroups.beginRestartAndWait(this.#config.resourceGroup, name, { updateIntervalInMs: this.#config.pollIntervalMs, abortSignal: call.signal });
    } catch (error) {
      throw toWorkerError(error, this.#facts('restart container group', workerId, values));
    }
    this.#ctx.logger.info('azure-aci provider: container group restarted', { workerId });
    const deadline = Date.now() + this.#config.restartTimeoutMs;
    for (;;) {
      const now = await this.#read(workerId, call.signal);
      if (now === undefined) throw notFound(workerId);
      const state = stateOfGroup(now);
      if (state.phase === 'Running' || isFinalState(state) || Date.now() > deadline || call.signal.aborted) return this.#toWorker(now, state);
      await sleep(Math.min(this.#config.pollIntervalMs, 500), call.signal);
    }
  }

  /** PUTs the group back with fresh secure values: ARM never returns them, so every env secret must be given. */
  async #updateSecrets(group: ContainerGroup, workerId: string, secrets: readonly SecretMount[], call: CallContext): Promise<void> {
    const container = group.containers[0];
    if (container === undefined) throw new WorkerManagerError('WM_ERR_CONFLICT', `worker '${workerId}' has no container to restart`, { details: { workerId } });
    const fresh = new Map(secrets.flatMap((m) => (m.strategy === 'env' ? [[m.envName, m.value] as const] : [])));
    const env = (container.environmentVariables ?? []).map((e) => {
      if (e.value !== undefined) return fresh.has(e.name) ? { name: e.name, secureValue: fresh.get(e.name)! } : { name: e.name, value: e.value };
      const value = fresh.get(e.name);
      if (value === undefined) {
        throw new WorkerManagerError('WM_ERR_CONFLICT', `worker '${workerId}': secure variable ${e.name} cannot be restored (ARM never returns it); give all env secrets to restart`, { details: { workerId, env: e.name } });
      }
      return { name: e.name, secureValue: value };
    });
    const { instanceView: _view, ...rest } = container;
    const update: ContainerGroup = {
      location: group.location,
      tags: group.tags,
      osType: group.osType,
      restartPolicy: group.restartPolicy,
      containers: [{ ...rest, environmentVariables: env }],
    };
    await this.#client.containerGroups.beginCreateOrUpdateAndWait(this.#config.resourceGroup, this.#name(workerId), update, { updateIntervalInMs: this.#config.pollIntervalMs, abortSignal: call.signal });
  }
}
