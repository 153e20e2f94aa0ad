import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { constants } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type Docker from 'dockerode';
import {
  boundText,
  isFinalState,
  quotaShortfalls,
  WorkerManagerError,
  type CallContext,
  type CapacityInfo,
  type ExecutionResult,
  type LogChunk,
  type LogOptions,
  type PluginContext,
  type ProviderHandlers,
  type ResourceAmounts,
  type RuntimeSpec,
  type SecretMount,
  type Worker,
  type WorkerState,
  writeFileAtomicSync,
} from '@worker-manager/plugin-sdk';
import { cleanupOrphans, type CleanupReport } from './cleanupOrphans.ts';
import type { ResolvedConfig } from './config.ts';
import { planContainer, type ContainerPlan, type PlannedFile } from './containerPlan.ts';
import { settleOomFlag, stateFromInspect, stateFromListRow, type InspectState } from './containerState.ts';
import { engineMessage, mapDockerError, statusOf, withRetry } from './dockerErrors.ts';
import { DEADLINE_MARKER, EventWatcher, RESTART_DONE } from './EventWatcher.ts';
import { execInContainer } from './execInContainer.ts';
import { LabelKeys, ownerFilter, ownerLabels, parseResources, specHash } from './labels.ts';
import { Lease } from './Lease.ts';
import { Names } from './names.ts';
import { ensureNetwork, removeNetworksNamed } from './networks.ts';
import { PendingCreates, pendingState, PendingSuperseded, type MaterializeHooks } from './PendingCreates.ts';
import { PendingStore, type PendingMarker } from './PendingStore.ts';
import { PortForwards } from './PortForwards.ts';
import { pullImage } from './pullImage.ts';
import { readLogs } from './readLogs.ts';
import { secretFileTarget, type SecretFileTarget } from './secretFileTarget.ts';

const MiB = 1024 * 1024;
/** Tries of a container create or start whose network was gone or ambiguous for a moment (see #joiningNetwork). */
const NETWORK_ATTEMPTS = 3;
const ENGINE_INFO_TTL_MS = 10_000;

type Inspect = Docker.ContainerInspectInfo;

const notFound = (workerId: string): WorkerManagerError =>
  new WorkerManagerError('WM_ERR_NOT_FOUND', `worker '${workerId}' does not exist`, { details: { workerId } });

const conflict = (workerId: string, state: WorkerState, operation: string): WorkerManagerError =>
  new WorkerManagerError('WM_ERR_CONFLICT', `cannot ${operation} worker '${workerId}': it is ${state.phase}`, { details: { workerId, phase: state.phase } });

const imageNotPresent = (image: string, workerId: string): WorkerManagerError =>
  new WorkerManagerError('WM_ERR_PROVIDER_SPECIFIC', `image '${image}' is not present on the engine and imagePullPolicy is Never`, {
    details: { workerId, image, reason: 'ImageNotPresent' },
  });

/** The engine refused a container name: a concurrent create of the same worker made it. `cause` is the mapped error. */
class NameTaken extends Error {
  override readonly cause: WorkerManagerError;
  constructor(cause: WorkerManagerError) {
    super(cause.message);
    this.cause = cause;
  }
}

/** The engine has no such image (removed since it was looked for). `cause` is the mapped error. */
class ImageMissing extends Error {
  override readonly cause: WorkerManagerError;
  constructor(cause: WorkerManagerError) {
    super(cause.message);
    this.cause = cause;
  }
}

/**
 * The handlers of one plugin thread. The engine is the truth: containers carry every fact needed to answer for a
 * worker (owner, worker id, epoch, spec hash, creation time, reserved resources) in labels, so any thread, and any
 * later one, serves any call. Before its container exists, a worker whose image is being pulled is a pending marker
 * under the state dir (see {@link PendingCreates}), which every thread reads the same way. The other files are
 * terminate markers and the events lease under the state dir, and the per-worker secret folders on the host tmpfs.
 */
export class DockerProvider {
  readonly #ctx: PluginContext<unknown>;
  readonly #config: ResolvedConfig;
  readonly #docker: Docker;
  readonly #keys: LabelKeys;
  readonly #owner: Record<string, string>;
  readonly #names: Names;
  readonly #markersDir: string;
  readonly #forwards: PortForwards;
  readonly #watcher: EventWatcher | undefined;
  readonly #pending: PendingCreates;
  /** The look-up of the instance network in flight, shared by the creates that need it meanwhile. */
  #instanceNetwork: Promise<string> | undefined;
  #gpuSupport: Promise<boolean> | undefined;
  #engineInfo: { at: number; info: Promise<{ NCPU?: number; MemTotal?: number }> } | undefined;

  constructor(ctx: PluginContext<unknown>, config: ResolvedConfig, docker: Docker, options: { watchEvents: boolean }) {
    this.#ctx = ctx;
    this.#config = config;
    this.#docker = docker;
    this.#keys = new LabelKeys(config.labelPrefix);
    this.#owner = ownerLabels(this.#keys, ctx.owner);
    this.#names = new Names(ctx.owner, config.secretsDir);
    this.#markersDir = path.join(ctx.stateDir, 'markers');
    mkdirSync(this.#markersDir, { recursive: true, mode: 0o700 });
    this.#forwards = new PortForwards(async (workerId) => {
      const info = await this.#inspect(workerId);
      return info !== undefined && info.State.Running;
    });
    if (options.watchEvents) {
      this.#watcher = new EventWatcher({
        docker,
        keys: this.#keys,
        owner: ctx.owner,
        lease: new Lease(path.join(ctx.stateDir, 'events.lease'), config.leaseStaleMs),
        markersDir: this.#markersDir,
        logger: ctx.logger,
        emit: (event) => ctx.emit(event),
        stopUnhealthy: config.stopUnhealthy,
        cleanup: () => this.cleanup(),
        cleanupIntervalMs: config.cleanupIntervalMs,
        leaseStaleMs: config.leaseStaleMs,
        stopGraceMs: config.defaultGracePeriodMs,
      });
      this.#watcher.start();
    }
    this.#pending = new PendingCreates({
      store: new PendingStore(path.join(ctx.stateDir, 'pending'), config.leaseStaleMs),
      beatMs: Math.min(1_000, Math.floor(config.leaseStaleMs / 3)),
      logger: ctx.logger,
      emit: (event) => ctx.emit(event),
      needsPull: (image) => this.#needsPull(image, ''),
      pull: (image, workerId, auth, signal) => pullImage(docker, image, workerId, auth, signal),
      materialize: (marker, secrets, hooks) => this.#materializePending(marker, secrets, hooks),
    });
    this.#pending.start();
    ctx.signal.addEventListener('abort', () => this.close(), { once: true });
  }

  /** The handler table given to the host. */
  handlers(): ProviderHandlers {
    return {
      createWorker: (p, call) => this.createWorker(p.workerId, p.spec, p.secrets ?? [], call),
      terminateWorker: (p) => this.terminateWorker(p.workerId, p.gracePeriodMs),
      getWorkerStatus: (p) => this.getWorkerStatus(p.workerId),
      listWorkers: (p) => this.listWorkers(p.labels),
      getLogs: (p, call) => this.getLogs(p.workerId, p.options ?? {}, call),
      getCapacity: () => this.getCapacity(),
      executeCommand: (p, call) => this.executeCommand(p.workerId, p.command, p.timeoutMs, call),
      pauseWorker: (p) => this.pauseWorker(p.workerId),
      resumeWorker: (p) => this.resumeWorker(p.workerId),
      restartWorker: (p) => this.restartWorker(p.workerId, p.secrets ?? []),
      refreshSecrets: (p) => this.refreshSecrets(p.workerId, p.secrets, p.signal),
      portForward: (p) => this.portForward(p.workerId, p.remotePort, p.localPort),
      close: () => this.close(),
    };
  }

  close(): void {
    this.#pending.close();
    this.#watcher?.stop();
    this.#forwards.closeAll();
  }

  /** Removes resources this host and instance own that no worker claims (see {@link cleanupOrphans}). */
  cleanup(): Promise<CleanupReport> {
    return cleanupOrphans({
      docker: this.#docker,
      keys: this.#keys,
      owner: this.#ctx.owner,
      names: this.#names,
      abandonedCreateMs: this.#config.abandonedCreateMs,
      markersDir: this.#markersDir,
      logger: this.#ctx.logger,
    });
  }

  #container(workerId: string): Docker.Container {
    return this.#docker.getContainer(this.#names.container(workerId));
  }

  /** Inspects the worker's container; undefined when there is none, or it is not ours. */
  async #inspect(workerId: string): Promise<Inspect | undefined> {
    try {
      const info = await withRetry(this.#config.retry, 'inspect', () => this.#container(workerId).inspect(), { workerId });
      return this.#ours(info.Config.Labels ?? {}, workerId) ? await settleOomFlag(info, () => this.#container(workerId).inspect()) : undefined;
    } catch (error) {
      if (error instanceof WorkerManagerError && error.code === 'WM_ERR_NOT_FOUND') return undefined;
      throw error;
    }
  }

  #ours(labels: Record<string, string>, workerId: string): boolean {
    return Object.entries(this.#owner).every(([k, v]) => labels[k] === v) && labels[this.#keys.workerId] === workerId;
  }

  async #require(workerId: string): Promise<Inspect> {
    const info = await this.#inspect(workerId);
    if (info === undefined) throw notFound(workerId);
    return info;
  }

  /** The spec's labels plus the owner labels: everything but the plugin's internal bookkeeping. */
  #publicLabels(labels: Record<string, string>): Record<string, string> {
    const internal = this.#keys.internal();
    return Object.fromEntries(Object.entries(labels).filter(([k]) => !internal.has(k)));
  }

  #endpoints(labels: Record<string, string>, ports: Record<string, Array<{ HostIp: string; HostPort: string }> | null> | undefined): Worker['endpoints'] {
    if (ports === undefined) return undefined;
    let named: Array<{ containerPort: number; protocol?: string; name?: string }> = [];
    try {
      named = JSON.parse(labels[this.#keys.ports] ?? '[]') as typeof named;
    } catch {
      // no names then
    }
    const out: NonNullable<Worker['endpoints']> = [];
    for (const [key, bindings] of Object.entries(ports)) {
      if (bindings === null || bindings.length === 0) continue;
      const [port, proto] = key.split('/');
      const b = bindings.find((x) => !x.HostIp.includes(':')) ?? bindings[0]!;
      const spec = named.find((p) => String(p.containerPort) === port && (p.protocol ?? 'tcp') === proto);
      const endpoint: { name?: string; address: string } = { address: `${b.HostIp === '' ? '0.0.0.0' : b.HostIp}:${b.HostPort}` };
      if (spec?.name !== undefined) endpoint.name = spec.name;
      out.push(endpoint);
    }
    return out.length > 0 ? out : undefined;
  }

  /** State from inspect, plus what only the plugin knows: a container it stopped at its timeoutMs. */
  #stateOf(info: Inspect): WorkerState {
    const state = stateFromInspect(info.State as unknown as InspectState);
    if (!isFinalState(state)) return state;
    let marker: string | undefined;
    try {
      marker = readFileSync(path.join(this.#markersDir, info.Id), 'utf8');
    } catch {
      return state;
    }
    if (marker !== DEADLINE_MARKER) return state;
    return { phase: 'Failed', reason: 'DeadlineExceeded', exitCode: info.State.ExitCode };
  }

  #toWorker(info: Inspect, state: WorkerState = this.#stateOf(info)): Worker {
    const labels = info.Config.Labels ?? {};
    const worker: Worker = {
      workerId: labels[this.#keys.workerId] ?? '',
      state,
      labels: this.#publicLabels(labels),
      createdAt: labels[this.#keys.createdAt] ?? info.Created,
      providerRef: info.Id,
    };
    const endpoints = this.#endpoints(labels, info.NetworkSettings?.Ports as never);
    if (endpoints !== undefined) worker.endpoints = endpoints;
    return worker;
  }

  // ---------------------------------------------------------------- create

  /**
   * Creates a worker and returns once the engine has accepted it, in its current state. An image already on the
   * engine: the container is created and started, and its state is whatever inspect says right after (Running, most
   * often). An image to pull: the create is recorded as pending and returns Starting{ImagePull}; a task finishes it in
   * the background (see {@link PendingCreates}).
   */
  async createWorker(workerId: string, spec: RuntimeSpec, allSecrets: readonly SecretMount[], call: CallContext): Promise<Worker> {
    // Registry credentials come through the credential layer like any secret; they serve the pull, not the worker.
    const authName = this.#config.registryAuthSecret;
    const secrets = allSecrets.filter((s) => s.name !== authName);
    const authSecret = allSecrets.find((s) => s.name === authName);
    const auth = registryAuth(authSecret);
    const epoch = String(Date.now());
    const createdAt = new Date().toISOString();
    const filesDir = this.#names.filesDir(workerId, epoch);
    const plan = planContainer({ workerId, spec, secrets, config: this.#config, keys: this.#keys, owner: this.#owner, epoch, createdAt, filesDir });
    const image = spec.image ?? '';

    const existing = await this.#inspect(workerId);
    if (existing !== undefined) return this.#existing(existing, spec);
    const joined = this.#joinPending(workerId, spec, secrets, auth);
    if (joined !== undefined) return joined;
    if (plan.gpu > 0 && !(await this.#hasGpuSupport())) {
      throw new WorkerManagerError('WM_ERR_COMPATIBILITY', 'this Docker engine has no GPU runtime (nvidia); resources.gpu cannot be honoured', {
        details: { workerId, gpu: plan.gpu },
      });
    }
    await this.#admit(spec, workerId);
    const pending: PendingMarker = {
      version: 1,
      token: randomUUID(),
      workerId,
      specHash: specHash(spec),
      spec,
      image,
      epoch,
      createdAt,
      labels: this.#publicLabels(plan.options.Labels ?? {}),
      resources: spec.resources ?? {},
      secretNames: secrets.map((s) => s.name),
      registryAuth: authSecret !== undefined,
      pendingReason: 'ImagePull',
      attempts: 1,
    };
    if (await this.#needsPull(image, workerId)) return this.#acceptPending(pending, secrets, auth, call);

    let containerId: string;
    try {
      containerId = await this.#materialize(workerId, plan, epoch, filesDir);
    } catch (error) {
      if (error instanceof NameTaken) {
        // Another thread or host call created this worker first: answer as a repeated create.
        rmSync(filesDir, { recursive: true, force: true });
        const raced = await this.#awaitRaced(workerId, call.signal);
        if (raced !== undefined) return this.#existing(raced, spec);
        throw error.cause;
      }
      // Removed from the engine since it was looked for: pull it after all.
      if (error instanceof ImageMissing && this.#config.imagePullPolicy !== 'Never') return this.#acceptPending(pending, secrets, auth, call);
      throw error instanceof ImageMissing ? imageNotPresent(image, workerId) : error;
    }
    const info = await this.#require(workerId);
    this.#ctx.emit({ type: 'WorkerCreated', workerId, providerRef: containerId, timestamp: new Date().toISOString() });
    this.#ctx.logger.info('docker provider: worker started', { workerId, container: containerId.slice(0, 12) });
    return this.#toWorker(info);
  }

  /** A worker whose create is pending, as the contract's Worker (no container yet, so no providerRef). */
  #pendingWorker(marker: PendingMarker): Worker {
    return { workerId: marker.workerId, state: pendingState(marker), labels: { ...marker.labels }, createdAt: marker.createdAt };
  }

  /** A repeated create of a pending worker joins it (and carries on its create if the task of it died). */
  #joinPending(workerId: string, spec: RuntimeSpec, secrets: readonly SecretMount[], auth: Docker.AuthConfig | undefined): Worker | undefined {
    const marker = this.#pending.read(workerId);
    if (marker === undefined) return undefined;
    if (marker.specHash !== specHash(spec)) {
      throw new WorkerManagerError('WM_ERR_ALREADY_EXISTS', `worker '${workerId}' exists with a different spec`, { details: { workerId } });
    }
    if (marker.failure === undefined) this.#pending.takeOver(workerId, secrets, auth);
    return this.#pendingWorker(this.#pending.read(workerId) ?? marker);
  }

  async #acceptPending(marker: PendingMarker, secrets: readonly SecretMount[], auth: Docker.AuthConfig | undefined, call: CallContext): Promise<Worker> {
    const { workerId } = marker;
    if (!this.#pending.accept(marker, secrets, auth)) {
      // Another call claimed this id a moment ago: answer as a repeated create once its marker (or container) shows.
      for (let i = 0; i < 100 && !call.signal.aborted; i++) {
        const raced = await this.#inspect(workerId);
        if (raced !== undefined) return this.#existing(raced, marker.spec);
        const joined = this.#joinPending(workerId, marker.spec, secrets, auth);
        if (joined !== undefined) return joined;
        await sleep(20);
      }
      throw new WorkerManagerError('WM_ERR_CONFLICT', `another create of worker '${workerId}' is under way`, { details: { workerId }, transient: true });
    }
    // A create that needed no pull may have made the container between the look-up and the claim: it stands for the worker.
    const raced = await this.#inspect(workerId);
    if (raced !== undefined) {
      this.#pending.cancel(workerId);
      return this.#existing(raced, marker.spec);
    }
    this.#ctx.logger.info('docker provider: worker accepted, its image is being pulled', { workerId, image: marker.image });
    return this.#pendingWorker(marker);
  }

  /** A repeated create: the same spec returns the worker as it is now (a container left `created` is started). */
  async #existing(info: Inspect, spec: RuntimeSpec): Promise<Worker> {
    const labels = info.Config.Labels ?? {};
    const workerId = labels[this.#keys.workerId] ?? '';
    if (labels[this.#keys.specHash] !== specHash(spec)) {
      throw new WorkerManagerError('WM_ERR_ALREADY_EXISTS', `worker '${workerId}' exists with a different spec`, { details: { workerId } });
    }
    if (info.State.Status !== 'created') return this.#toWorker(info);
    // Created by a thread that may have died before starting it: starting twice is harmless (the engine says 304).
    await this.#start(this.#docker.getContainer(info.Id), workerId);
    return this.#toWorker(await this.#require(workerId));
  }

  /** The container a concurrent create of the same id made; the engine reserves the name before inspect sees it. */
  async #awaitRaced(workerId: string, signal: AbortSignal): Promise<Inspect | undefined> {
    for (let i = 0; i < 50 && !signal.aborted; i++) {
      const raced = await this.#inspect(workerId);
      if (raced !== undefined) return raced;
      await sleep(20);
    }
    return undefined;
  }

  /**
   * Makes the worker's network, volumes, files and container, and starts it; returns the container id. On any
   * failure, and when `checkpoint` throws PendingCancelled (terminate came), it removes what it made; when another
   * task carries the create on ({@link PendingSuperseded}), or the name is taken ({@link NameTaken}: by a create of
   * the same worker, whose network, and for another attempt of a pending create whose files folder, this is too), it
   * leaves the rest to that one.
   */
  async #materialize(workerId: string, plan: ContainerPlan, epoch: string, filesDir: string, hooks?: MaterializeHooks): Promise<string> {
    const checkpoint = (): void => hooks?.checkpoint();
    let containerId: string | undefined;
    let networkMade = false;
    try {
      const networkMode = await this.#networkFor(workerId, plan, epoch);
      networkMade = plan.network.kind === 'strict';
      checkpoint();
      for (const volume of plan.persistentVolumes) await this.#ensureVolume(volume);
      if (plan.files.length > 0) writeFiles(filesDir, plan.files);
      checkpoint();
      const options = { ...plan.options, HostConfig: { ...plan.options.HostConfig, NetworkMode: networkMode } };
      const container = await this.#joiningNetwork(workerId, plan, epoch, () => this.#createContainer(workerId, options));
      containerId = container.id;
      checkpoint();
      hooks?.created(container.id);
      await this.#joiningNetwork(workerId, plan, epoch, () => this.#start(container, workerId));
      checkpoint();
      return container.id;
    } catch (error) {
      if (error instanceof PendingSuperseded) throw error;
      if (containerId !== undefined) {
        // Its die is not a failure to report: the worker was cancelled, or never started.
        this.#mark(containerId, 'terminate');
        await this.#docker
          .getContainer(containerId)
          .remove({ force: true, v: true })
          .catch(() => {});
      }
      if (error instanceof NameTaken) throw error;
      rmSync(filesDir, { recursive: true, force: true });
      if (networkMade) await this.#removeStrictNetwork(workerId);
      throw error;
    }
  }

  /**
   * Runs `step` (the create or the start of a container, which is when the engine resolves its network by name) and,
   * when the engine finds no network of the name or more than one, converges the network again and repeats it: a
   * network another thread or host made at the same moment, and removed when they agreed on one, can be seen either
   * way for a moment (see {@link ensureNetwork}).
   */
  async #joiningNetwork<T>(workerId: string, plan: ContainerPlan, epoch: string, step: () => Promise<T>): Promise<T> {
    const managed = plan.network.kind === 'strict' || (plan.network.kind === 'default' && this.#config.defaultNetwork === undefined);
    for (let attempt = 1; ; attempt++) {
      try {
        return await step();
      } catch (error) {
        if (!managed || attempt >= NETWORK_ATTEMPTS || !isNetworkTrouble(error)) throw error;
        this.#ctx.logger.info('docker provider: the worker network changed under a create; looking it up again', { workerId, attempt });
        await this.#networkFor(workerId, plan, epoch);
      }
    }
  }

  /**
   * Creates the worker's container. The options go in the request body only: dockerode would also copy every field
   * of them into the query string, where env values (secrets among them) would show in the engine's request logs, and
   * a large Env or Cmd would pass the engine's 1 MB header limit (answered 431, "Request Header Fields Too Large").
   */
  async #createContainer(workerId: string, options: Docker.ContainerCreateOptions): Promise<Docker.Container> {
    try {
      return await this.#docker.createContainer(bodyOnly(this.#names.container(workerId), options));
    } catch (error) {
      const mapped = mapDockerError(error, 'create container', { workerId });
      if (statusOf(error) === 409) throw new NameTaken(mapped);
      if (statusOf(error) === 404 && /no such image/i.test(engineMessage(error))) throw new ImageMissing(mapped);
      throw mapped;
    }
  }

  /**
   * Makes the container of a pending create (after its pull) from its marker, with the secrets its task holds, and
   * returns it with its state right after the start.
   */
  async #materializePending(marker: PendingMarker, secrets: readonly SecretMount[], hooks: MaterializeHooks): Promise<{ containerId: string; state: WorkerState }> {
    const { workerId, epoch, createdAt, spec } = marker;
    const filesDir = this.#names.filesDir(workerId, epoch);
    const plan = planContainer({ workerId, spec, secrets, config: this.#config, keys: this.#keys, owner: this.#owner, epoch, createdAt, filesDir });
    let containerId: string;
    try {
      containerId = await this.#materialize(workerId, plan, epoch, filesDir, hooks);
    } catch (error) {
      if (!(error instanceof NameTaken || error instanceof ImageMissing)) throw error;
      // The same worker made by another attempt of this create, or by a create that needed no pull (a repeated create
      // once the image was there): it stands for the worker.
      const raced = error instanceof NameTaken ? await this.#awaitRaced(workerId, this.#ctx.signal) : undefined;
      const labels = raced?.Config.Labels ?? {};
      // Another attempt's container uses this very files folder (same epoch); any other does not.
      if (labels[this.#keys.epoch] !== epoch) rmSync(filesDir, { recursive: true, force: true });
      if (raced === undefined || labels[this.#keys.specHash] !== marker.specHash) throw error.cause;
      hooks.checkpoint();
      // An attempt that died between making and starting it left it `created`.
      if (raced.State.Status === 'created') await this.#start(this.#docker.getContainer(raced.Id), workerId);
      containerId = raced.Id;
    }
    const info = await this.#inspect(workerId);
    return { containerId, state: info?.Id === containerId ? this.#stateOf(info) : { phase: 'Unknown' } };
  }

  async #start(container: Docker.Container, workerId: string): Promise<void> {
    try {
      await container.start();
    } catch (error) {
      if (statusOf(error) === 304) return;
      throw mapDockerError(error, 'start container', { workerId });
    }
  }

  /** Waits until the container runs (and, with a health check, is healthy or unhealthy): for restarts, not creates. */
  async #waitStarted(workerId: string, signal: AbortSignal): Promise<Inspect> {
    const deadline = Date.now() + this.#config.startTimeoutMs;
    for (let delay = 20; ; delay = Math.min(200, delay * 2)) {
      const info = await this.#require(workerId);
      const state = stateFromInspect(info.State as unknown as InspectState);
      if (state.phase !== 'Creating' && state.phase !== 'Starting') {
        if (state.phase === 'Failed' && state.reason === 'Unhealthy' && info.State.Running && this.#config.stopUnhealthy) {
          await this.#docker.getContainer(info.Id).kill().catch(() => {});
          return this.#require(workerId);
        }
        return info;
      }
      if (Date.now() > deadline || signal.aborted) {
        throw new WorkerManagerError('WM_ERR_TIMEOUT', `worker '${workerId}' did not become ${info.State.Health === undefined ? 'running' : 'healthy'} in time`, {
          details: { workerId, startTimeoutMs: this.#config.startTimeoutMs },
        });
      }
      await sleep(delay);
    }
  }

  /** True when the create must pull first: policy Always, or the image is not on the engine (policy Never: refused). */
  async #needsPull(image: string, workerId: string): Promise<boolean> {
    if (this.#config.imagePullPolicy === 'Always') return true;
    try {
      await withRetry(this.#config.retry, 'inspect image', () => this.#docker.getImage(image).inspect(), { workerId, image });
      return false;
    } catch (error) {
      if (!(error instanceof WorkerManagerError && error.code === 'WM_ERR_NOT_FOUND')) throw error;
    }
    if (this.#config.imagePullPolicy === 'Never') throw imageNotPresent(image, workerId);
    return true;
  }

  async #admit(spec: RuntimeSpec, workerId: string): Promise<void> {
    const capacity = await this.getCapacity();
    if (capacity.activeWorkers >= this.#config.maxWorkers) {
      throw new WorkerManagerError('WM_ERR_RESOURCE_EXHAUSTED', `the instance already runs ${capacity.activeWorkers} workers, its maxWorkers`, {
        details: { workerId, activeWorkers: capacity.activeWorkers, maxWorkers: this.#config.maxWorkers },
      });
    }
    // GPUs are the engine's to arbitrate (DeviceRequests); storage is not accounted.
    const shortfalls = quotaShortfalls({ ...spec.resources, gpu: undefined, storageMiB: undefined }, capacity.available);
    if (shortfalls.length > 0) {
      throw new WorkerManagerError('WM_ERR_RESOURCE_EXHAUSTED', `not enough ${shortfalls.map((s) => s.resource).join(', ')} left for this worker`, {
        details: { workerId, shortfalls },
      });
    }
  }

  #hasGpuSupport(): Promise<boolean> {
    this.#gpuSupport ??= withRetry(this.#config.retry, 'info', () => this.#docker.info() as Promise<{ Runtimes?: Record<string, unknown> }>).then(
      (info) => Object.keys(info.Runtimes ?? {}).some((r) => r.includes('nvidia')),
    );
    return this.#gpuSupport;
  }

  /**
   * The network the worker joins, as NetworkMode: `none`, the configured `defaultNetwork`, the instance network or
   * the worker's own Strict network. The last two are looked up, made if absent, and converged at every create (see
   * {@link ensureNetwork}), so two networks of one name, whoever made them, do not outlive the next create. Concurrent
   * creates of this thread share one look-up of the instance network.
   */
  async #networkFor(workerId: string, plan: ContainerPlan, epoch: string): Promise<string> {
    if (plan.network.kind === 'none') return 'none';
    const kind = { [this.#keys.kind]: 'network' };
    if (plan.network.kind === 'default') {
      if (this.#config.defaultNetwork !== undefined) return this.#config.defaultNetwork;
      const name = this.#names.instanceNetwork();
      this.#instanceNetwork ??= ensureNetwork(this.#docker, { name, internal: false, labels: { ...this.#owner, ...kind }, owned: this.#owner }, this.#ctx.logger)
        .then(() => name)
        .finally(() => {
          this.#instanceNetwork = undefined;
        });
      return this.#instanceNetwork;
    }
    const name = this.#names.strictNetwork(workerId);
    const owned = { ...this.#owner, [this.#keys.workerId]: workerId };
    await ensureNetwork(this.#docker, { name, internal: true, labels: { ...owned, ...kind, [this.#keys.epoch]: epoch }, owned }, this.#ctx.logger);
    return name;
  }

  /** Removes the worker's Strict network (every network of its name the plugin made for this worker id). */
  #removeStrictNetwork(workerId: string): Promise<void> {
    return removeNetworksNamed(this.#docker, this.#names.strictNetwork(workerId), { ...this.#owner, [this.#keys.workerId]: workerId }, this.#ctx.logger);
  }

  async #ensureVolume(name: string): Promise<void> {
    try {
      await this.#docker.getVolume(name).inspect();
      return;
    } catch (error) {
      if (statusOf(error) !== 404) throw mapDockerError(error, 'inspect volume', { volume: name });
    }
    try {
      await this.#docker.createVolume({ Name: name, Labels: { ...this.#owner, [this.#keys.kind]: 'persistent-volume' } });
    } catch (error) {
      throw mapDockerError(error, 'create volume', { volume: name });
    }
  }

  // ---------------------------------------------------------------- terminate and friends

  #mark(containerId: string, why: string): void {
    writeFileSync(path.join(this.#markersDir, containerId), why);
  }

  async terminateWorker(workerId: string, gracePeriodMs: number | undefined): Promise<{ workerId: string; state: WorkerState; alreadyGone: boolean }> {
    this.#forwards.closeWorker(workerId);
    // First the marker of a pending create, so its task stops making the container; then the container, which that
    // task may have made already.
    const pending = this.#pending.cancel(workerId);
    const info = await this.#inspect(workerId);
    if (info === undefined) return this.#terminatePending(workerId, pending);
    const container = this.#docker.getContainer(info.Id);
    const before = this.#stateOf(info);
    const live = info.State.Running || info.State.Status === 'created';
    let state: WorkerState = before;
    if (live) {
      this.#mark(info.Id, 'terminate');
      if (info.State.Paused) await container.unpause().catch(() => {});
      const grace = gracePeriodMs ?? this.#config.defaultGracePeriodMs;
      try {
        // The engine takes whole seconds; 0 kills at once.
        await container.stop({ t: Math.ceil(grace / 1_000) });
      } catch (error) {
        if (statusOf(error) !== 304 && statusOf(error) !== 404) throw mapDockerError(error, 'stop container', { workerId });
      }
      const after = await container.inspect().catch(() => undefined);
      const exitCode = after?.State.ExitCode;
      state = exitCode === undefined ? { phase: 'Terminated' } : { phase: 'Terminated', exitCode };
      const timestamp = new Date().toISOString();
      this.#ctx.emit({ type: 'WorkerStateChanged', workerId, oldState: before, newState: state, timestamp });
      this.#ctx.emit(exitCode === undefined ? { type: 'WorkerTerminated', workerId, timestamp } : { type: 'WorkerTerminated', workerId, exitCode, timestamp });
    }
    await this.#removeWorkerResources(info, workerId);
    this.#ctx.logger.info('docker provider: worker removed', { workerId, phase: state.phase });
    return { workerId, state, alreadyGone: !live };
  }

  /**
   * Terminate of a worker without a container: a cancelled pending create (its task removes what it makes from now
   * on; this removes what a dead task may have left), a failed one (its failure is the final state), or none.
   */
  async #terminatePending(workerId: string, pending: PendingMarker | undefined): Promise<{ workerId: string; state: WorkerState; alreadyGone: boolean }> {
    if (pending === undefined) return { workerId, state: { phase: 'Terminated' }, alreadyGone: true };
    rmSync(this.#names.filesDir(workerId, pending.epoch), { recursive: true, force: true });
    if (pending.spec.network?.isolation === 'Strict') await this.#removeStrictNetwork(workerId);
    const before = pendingState(pending);
    if (before.phase === 'Failed') {
      this.#ctx.logger.info('docker provider: failed worker removed', { workerId, reason: before.reason });
      return { workerId, state: before, alreadyGone: true };
    }
    const state: WorkerState = { phase: 'Terminated' };
    const timestamp = new Date().toISOString();
    this.#ctx.emit({ type: 'WorkerStateChanged', workerId, oldState: before, newState: state, timestamp });
    this.#ctx.emit({ type: 'WorkerTerminated', workerId, timestamp });
    this.#ctx.logger.info('docker provider: pending worker cancelled', { workerId, pendingReason: pending.pendingReason });
    return { workerId, state, alreadyGone: false };
  }

  async #removeWorkerResources(info: Inspect, workerId: string): Promise<void> {
    try {
      await this.#docker.getContainer(info.Id).remove({ force: true, v: true });
    } catch (error) {
      if (statusOf(error) !== 404 && statusOf(error) !== 409) throw mapDockerError(error, 'remove container', { workerId });
    }
    const labels = info.Config.Labels ?? {};
    const filesDir = labels[this.#keys.secretsDir];
    if (filesDir !== undefined && filesDir.startsWith(this.#names.filesRoot())) rmSync(filesDir, { recursive: true, force: true });
    if (info.HostConfig.NetworkMode === this.#names.strictNetwork(workerId)) await this.#removeStrictNetwork(workerId);
  }

  async getWorkerStatus(workerId: string): Promise<WorkerState> {
    // The marker first: a create finishing in between has made its container before it removes its marker.
    const pending = this.#pending.read(workerId);
    const info = await this.#inspect(workerId);
    if (info !== undefined) return this.#stateOf(info);
    if (pending !== undefined) return pendingState(pending);
    throw notFound(workerId);
  }

  async listWorkers(labels: Record<string, string> | undefined): Promise<Worker[]> {
    const filters = ownerFilter(this.#keys, this.#ctx.owner, { ...labels, [this.#keys.kind]: 'worker' });
    // Markers first, as in getWorkerStatus; a worker with both is its container.
    const pending = this.#pending.list().filter((m) => Object.entries(labels ?? {}).every(([k, v]) => m.labels[k] === v));
    const rows = await withRetry(this.#config.retry, 'listWorkers', () => this.#docker.listContainers({ all: true, filters }));
    const out: Worker[] = [];
    for (const row of rows) {
      const workerId = row.Labels[this.#keys.workerId];
      if (workerId === undefined) continue;
      const state = stateFromListRow(row);
      if (state === undefined) {
        // Ended containers: only inspect knows the exit code and the OOM flag.
        const info = await this.#docker
          .getContainer(row.Id)
          .inspect()
          .catch(() => undefined);
        if (info !== undefined) out.push(this.#toWorker(info));
        continue;
      }
      const worker: Worker = { workerId, state, labels: this.#publicLabels(row.Labels), createdAt: row.Labels[this.#keys.createdAt] ?? new Date(row.Created * 1_000).toISOString(), providerRef: row.Id };
      const ports: Record<string, Array<{ HostIp: string; HostPort: string }>> = {};
      for (const p of row.Ports ?? []) {
        if (p.PublicPort === undefined) continue;
        (ports[`${p.PrivatePort}/${p.Type}`] ??= []).push({ HostIp: p.IP ?? '', HostPort: String(p.PublicPort) });
      }
      const endpoints = this.#endpoints(row.Labels, ports);
      if (endpoints !== undefined) worker.endpoints = endpoints;
      out.push(worker);
    }
    const listed = new Set(rows.map((row) => row.Labels[this.#keys.workerId]));
    for (const marker of pending) if (!listed.has(marker.workerId)) out.push(this.#pendingWorker(marker));
    return out.sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.workerId.localeCompare(b.workerId)));
  }

  async getLogs(workerId: string, options: LogOptions, call: CallContext): Promise<AsyncIterable<LogChunk>> {
    const info = await this.#require(workerId);
    return readLogs(this.#docker.getContainer(info.Id), options, AbortSignal.any([call.signal, this.#ctx.signal]), workerId);
  }

  async getCapacity(): Promise<CapacityInfo> {
    const [info, rows] = await Promise.all([
      this.#info(),
      withRetry(this.#config.retry, 'getCapacity', () => this.#docker.listContainers({ all: true, filters: ownerFilter(this.#keys, this.#ctx.owner, { [this.#keys.kind]: 'worker' }) })),
    ]);
    const total: ResourceAmounts = {
      cpuMillicores: Math.max(0, (info.NCPU ?? 0) * 1_000 - this.#config.reserved.cpuMillicores),
      memoryMiB: Math.max(0, Math.floor((info.MemTotal ?? 0) / MiB) - this.#config.reserved.memoryMiB),
      gpu: 0,
      storageMiB: 0,
    };
    const used: ResourceAmounts = { cpuMillicores: 0, memoryMiB: 0, gpu: 0, storageMiB: 0 };
    let activeWorkers = 0;
    const pendingRows = new Set(rows.map((row) => row.Labels[this.#keys.workerId]));
    // A pending create will use what it reserved: count it from acceptance on.
    for (const marker of this.#pending.list()) {
      if (marker.failure !== undefined || pendingRows.has(marker.workerId)) continue;
      activeWorkers++;
      used.cpuMillicores += marker.resources.cpuMillicores ?? 0;
      used.memoryMiB += marker.resources.memoryMiB ?? 0;
      used.gpu += marker.resources.gpu ?? 0;
    }
    for (const row of rows) {
      if (row.State !== 'running' && row.State !== 'paused' && row.State !== 'created' && row.State !== 'restarting') continue;
      activeWorkers++;
      const r = parseResources(row.Labels[this.#keys.resources]);
      used.cpuMillicores += r.cpuMillicores ?? 0;
      used.memoryMiB += r.memoryMiB ?? 0;
      used.gpu += r.gpu ?? 0;
    }
    const available: ResourceAmounts = {
      cpuMillicores: Math.max(0, total.cpuMillicores - used.cpuMillicores),
      memoryMiB: Math.max(0, total.memoryMiB - used.memoryMiB),
      gpu: Math.max(0, total.gpu - used.gpu),
      storageMiB: 0,
    };
    return { total, used, available, activeWorkers, maxWorkers: this.#config.maxWorkers };
  }

  /** `docker info`, kept for a few seconds: CPUs and memory of the engine change rarely, creates are frequent. */
  #info(): Promise<{ NCPU?: number; MemTotal?: number }> {
    const now = Date.now();
    if (this.#engineInfo === undefined || now - this.#engineInfo.at > ENGINE_INFO_TTL_MS) {
      const info = withRetry(this.#config.retry, 'info', () => this.#docker.info() as Promise<{ NCPU?: number; MemTotal?: number }>);
      this.#engineInfo = { at: now, info };
      info.catch(() => {
        this.#engineInfo = undefined;
      });
    }
    return this.#engineInfo.info;
  }

  async executeCommand(workerId: string, command: string[], timeoutMs: number | undefined, call: CallContext): Promise<ExecutionResult> {
    const info = await this.#require(workerId);
    return execInContainer({ container: this.#docker.getContainer(info.Id), workerId, command, timeoutMs, maxBytes: this.#config.maxExecOutputBytes, signal: call.signal });
  }

  async pauseWorker(workerId: string): Promise<WorkerState> {
    const info = await this.#require(workerId);
    const state = stateFromInspect(info.State as unknown as InspectState);
    if (state.phase === 'Paused') return state;
    if (!info.State.Running) throw conflict(workerId, state, 'pause');
    try {
      await this.#docker.getContainer(info.Id).pause();
    } catch (error) {
      const mapped = mapDockerError(error, 'pause', { workerId });
      if (mapped.code !== 'WM_ERR_CONFLICT' || (await this.getWorkerStatus(workerId)).phase !== 'Paused') throw mapped;
      return { phase: 'Paused' };
    }
    this.#ctx.emit({ type: 'WorkerStateChanged', workerId, oldState: state, newState: { phase: 'Paused' }, timestamp: new Date().toISOString() });
    return { phase: 'Paused' };
  }

  async resumeWorker(workerId: string): Promise<WorkerState> {
    const info = await this.#require(workerId);
    const state = stateFromInspect(info.State as unknown as InspectState);
    if (!info.State.Paused) {
      if (info.State.Running) return state;
      throw conflict(workerId, state, 'resume');
    }
    try {
      await this.#docker.getContainer(info.Id).unpause();
    } catch (error) {
      const mapped = mapDockerError(error, 'resume', { workerId });
      if (mapped.code !== 'WM_ERR_CONFLICT' || (await this.getWorkerStatus(workerId)).phase === 'Paused') throw mapped;
      return this.getWorkerStatus(workerId);
    }
    const now = await this.getWorkerStatus(workerId);
    this.#ctx.emit({ type: 'WorkerStateChanged', workerId, oldState: { phase: 'Paused' }, newState: now, timestamp: new Date().toISOString() });
    return now;
  }

  /**
   * Restarts the container. Without `secrets` (or when they change only files, or env values it already has) this is
   * the engine's restart: the container, its logs and its environment stay. An env secret with a new value cannot
   * reach a created container (its Env is fixed), so the worker is recreated: the old container is stopped and put
   * aside under another name, a new one is created from its inspected config with the new Env (same labels, mounts,
   * network, limits, same files folder), started, and the old one removed; if the create fails, the old one is renamed
   * back and started again. A recreated worker has a new providerRef and starts with empty logs.
   */
  async restartWorker(workerId: string, secrets: readonly SecretMount[] = []): Promise<Worker> {
    const info = await this.#require(workerId);
    const files = secrets.filter((m) => m.strategy !== 'env');
    if (files.length > 0) this.#replaceSecretFiles(info, workerId, files);
    const env = info.Config.Env ?? [];
    const envMounts = secrets.filter((m) => m.strategy === 'env');
    if (envMounts.some((m) => !env.includes(`${m.envName}=${m.value}`))) return this.#recreate(info, workerId, envMounts);
    const container = this.#docker.getContainer(info.Id);
    // The die of a restart is not a failure: the watcher skips marked containers.
    this.#mark(info.Id, 'restart');
    try {
      if (info.State.Paused) await container.unpause().catch(() => {});
      await container.restart({ t: Math.ceil(this.#config.defaultGracePeriodMs / 1_000) });
    } catch (error) {
      throw mapDockerError(error, 'restart', { workerId });
    } finally {
      // Dies up to now were the restart's; a later one (killed behind our back) is a failure again.
      this.#mark(info.Id, `${RESTART_DONE}${Date.now()}`);
    }
    const after = await this.#waitStarted(workerId, this.#ctx.signal);
    return this.#toWorker(after);
  }

  async #recreate(info: Inspect, workerId: string, envMounts: ReadonlyArray<Extract<SecretMount, { strategy: 'env' }>>): Promise<Worker> {
    const name = this.#names.container(workerId);
    const old = this.#docker.getContainer(info.Id);
    this.#mark(info.Id, 'restart');
    if (info.State.Paused) await old.unpause().catch(() => {});
    try {
      await old.stop({ t: Math.ceil(this.#config.defaultGracePeriodMs / 1_000) });
    } catch (error) {
      if (statusOf(error) !== 304) throw mapDockerError(error, 'stop container', { workerId });
    }
    try {
      await old.rename({ name: `${name}-replaced-${Date.now()}` });
    } catch (error) {
      throw mapDockerError(error, 'rename container', { workerId });
    }
    let next: Docker.Container;
    try {
      next = await this.#docker.createContainer(bodyOnly(name, recreateOptions(info, envMounts)));
    } catch (error) {
      await old.rename({ name }).catch(() => {});
      await this.#start(old, workerId).catch(() => {});
      // The engine's message describes the request, which holds the new Env: keep it out.
      throw new WorkerManagerError('WM_ERR_PROVIDER_SPECIFIC', `could not recreate worker '${workerId}' with its new secrets; the old container runs again`, {
        details: { workerId, status: statusOf(error) },
      });
    }
    await old.remove({ force: true, v: true }).catch(() => {});
    await this.#start(next, workerId);
    const after = await this.#waitStarted(workerId, this.#ctx.signal);
    this.#ctx.logger.info('docker provider: worker recreated with new env secrets', {
      workerId,
      container: after.Id.slice(0, 12),
      secrets: envMounts.map((m) => ({ name: m.name, version: m.version })),
    });
    return this.#toWorker(after);
  }

  /**
   * Replaces file secrets of a running worker in its bind-mounted folder (temp file, fsync, rename: the container
   * sees the old or the new file, whole), then sends `signal` to the container's main process (`docker kill -s`;
   * with `init`, docker-init passes it on to the command). Env mounts are ignored.
   */
  async refreshSecrets(workerId: string, secrets: readonly SecretMount[], signal: string | undefined): Promise<{ workerId: string; updated: number }> {
    const sig = signal === undefined ? undefined : signalOf(signal);
    const info = await this.#require(workerId);
    const state = this.#stateOf(info);
    if (!info.State.Running || isFinalState(state)) throw conflict(workerId, state, 'refresh the secrets of');
    const updated = this.#replaceSecretFiles(
      info,
      workerId,
      secrets.filter((m) => m.strategy !== 'env'),
    );
    if (sig !== undefined) {
      try {
        await this.#docker.getContainer(info.Id).kill({ signal: sig });
      } catch (error) {
        throw mapDockerError(error, `send ${sig} to`, { workerId });
      }
    }
    this.#ctx.logger.info('docker provider: secrets refreshed', {
      workerId,
      updated,
      secrets: secrets.filter((m) => m.strategy !== 'env').map((m) => ({ name: m.name, version: m.version })),
      ...(sig === undefined ? {} : { signal: sig }),
    });
    return { workerId, updated };
  }

  /** Resolves every mount first, so one that is not mounted in this worker changes nothing; then replaces each file. */
  #replaceSecretFiles(info: Inspect, workerId: string, mounts: ReadonlyArray<Exclude<SecretMount, { strategy: 'env' }>>): number {
    const planned: Array<{ target: SecretFileTarget; value: string }> = mounts.map((m, i) => {
      const target = secretFileTarget(info, this.#keys, this.#names.filesRoot(), this.#config.secretsMountPath, m);
      if (target === undefined) {
        throw new WorkerManagerError('WM_ERR_VALIDATION', `secret mount '${m.name}': worker '${workerId}' has no secret folder mounted where its path points`, {
          details: { instancePath: `/secrets/${i}/path`, workerId, secret: m.name },
        });
      }
      return { target, value: m.value };
    });
    for (const { target, value } of planned) {
      // Never recreate a folder terminate removed: files written there would outlive their worker.
      if (!existsSync(target.root)) throw conflict(workerId, { phase: 'Terminated' }, 'refresh the secrets of');
      mkdirSync(path.dirname(target.file), { recursive: true, mode: 0o755 });
      writeFileAtomicSync(target.file, value, { mode: 0o444 });
    }
    return planned.length;
  }

  async portForward(workerId: string, remotePort: number, localPort: number | undefined): Promise<{ endpoint: string }> {
    const info = await this.#require(workerId);
    const state = stateFromInspect(info.State as unknown as InspectState);
    if (!info.State.Running || isFinalState(state)) throw conflict(workerId, state, 'forward a port of');
    const ip = Object.values(info.NetworkSettings.Networks ?? {}).find((n) => n.IPAddress !== '')?.IPAddress;
    if (ip === undefined) {
      throw new WorkerManagerError('WM_ERR_CONFLICT', `worker '${workerId}' has no network address (isolation Complete); its ports cannot be forwarded`, {
        details: { workerId },
      });
    }
    return { endpoint: await this.#forwards.open(workerId, { host: ip, port: remotePort }, localPort) };
  }
}

/** The signal a caller named, checked against this platform's signal names before it reaches the engine. */
function signalOf(name: string): string {
  if (!Object.hasOwn(constants.signals, name)) {
    throw new WorkerManagerError('WM_ERR_VALIDATION', `unknown signal '${boundText(name)}'`, { details: { instancePath: '/signal', signal: boundText(name) } });
  }
  return name;
}

/** True when the engine refused a create or start because the network name it resolves is gone or ambiguous. */
function isNetworkTrouble(error: unknown): boolean {
  const e = error instanceof NameTaken || error instanceof ImageMissing ? undefined : (error as WorkerManagerError);
  return e !== undefined && (e.code === 'WM_ERR_NOT_FOUND' || e.code === 'WM_ERR_VALIDATION') && /network \S+ (not found|is ambiguous)/i.test(e.message);
}

/**
 * Create options as dockerode's `_query` / `_body` pair: the name in the query string, everything else in the body
 * only (left as they are, dockerode puts every option in the query string as well).
 */
function bodyOnly(name: string, options: Docker.ContainerCreateOptions): Docker.ContainerCreateOptions {
  return { _query: { name }, _body: options } as Docker.ContainerCreateOptions;
}

/** Create options that reproduce an inspected container with some environment variables replaced. */
function recreateOptions(info: Inspect, envMounts: ReadonlyArray<Extract<SecretMount, { strategy: 'env' }>>): Docker.ContainerCreateOptions {
  const c = info.Config;
  const replaced = new Set(envMounts.map((m) => m.envName));
  const env = (c.Env ?? []).filter((e) => !replaced.has(e.slice(0, e.indexOf('=')))).concat(envMounts.map((m) => `${m.envName}=${m.value}`));
  const options: Docker.ContainerCreateOptions = {
    Image: c.Image,
    Env: env,
    Labels: c.Labels,
    ExposedPorts: c.ExposedPorts,
    HostConfig: info.HostConfig,
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    Tty: false,
    OpenStdin: false,
  };
  if (c.Entrypoint !== null && c.Entrypoint !== undefined) options.Entrypoint = c.Entrypoint;
  if (c.Cmd !== null && c.Cmd !== undefined) options.Cmd = c.Cmd;
  if (c.WorkingDir !== '') options.WorkingDir = c.WorkingDir;
  if (c.User !== '') options.User = c.User;
  const stopSignal = (c as { StopSignal?: string }).StopSignal;
  if (stopSignal !== undefined) options.StopSignal = stopSignal;
  if (c.Healthcheck !== undefined) options.Healthcheck = c.Healthcheck;
  return options;
}

/** Registry credentials from their secret (JSON); a value that is not such JSON is refused without echoing it. */
function registryAuth(secret: SecretMount | undefined): Docker.AuthConfig | undefined {
  if (secret === undefined) return undefined;
  try {
    const v = JSON.parse(secret.value) as Record<string, unknown>;
    if (typeof v === 'object' && v !== null && (typeof v['username'] === 'string' || typeof v['identitytoken'] === 'string')) return v as Docker.AuthConfig;
  } catch {
    // fall through to the error, which must not include the value
  }
  throw new WorkerManagerError('WM_ERR_VALIDATION', `registry credential secret '${secret.name}' must be JSON with username/password or identitytoken`, {
    details: { secret: secret.name, version: secret.version },
  });
}

/** Writes a worker's secret and config map files: folders 0755, files 0444, read-only once mounted. */
function writeFiles(dir: string, files: readonly PlannedFile[]): void {
  mkdirSync(path.dirname(dir), { recursive: true, mode: 0o700 });
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  for (const f of files) {
    const file = path.join(dir, f.rel);
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
    writeFileSync(file, f.content, { mode: 0o444 });
  }
  // Bind mounts of empty folders still need the folder.
  mkdirSync(path.join(dir, 'secrets'), { recursive: true, mode: 0o755 });
}
