import { createHash } from 'node:crypto';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, NetworkingV1Api, PatchStrategy, setHeaderOptions, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import {
  isFinalState,
  WorkerManagerError,
  type CallContext,
  type CapacityInfo,
  type ExecutionResult,
  type LogChunk,
  type LogOptions,
  type PluginContext,
  type ProviderHandlers,
  type RuntimeSpec,
  type SecretMount,
  type Worker,
  type WorkerState,
} from '@worker-manager/plugin-sdk';
import { readCapacity } from './capacity.ts';
import type { ResolvedConfig } from './config.ts';
import { execInPod } from './execInPod.ts';
import { isConflict, isNotFound, mapKubeError } from './kubeErrors.ts';
import { envKey, fileKey, Keys, Names, secretFilePath } from './names.ts';
import { planNetworkPolicy } from './networkPolicy.ts';
import { WorkerObjects, type OrphanReport } from './WorkerObjects.ts';
import { planPod, workerSelector } from './podPlan.ts';
import { stateOfPod } from './podState.ts';
import { PodWatcher } from './PodWatcher.ts';
import { PortForwards } from './PortForwards.ts';
import { readLogs } from './readLogs.ts';

const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
/** After a graceful deletion's grace period, how long the kubelet may take to report before the plugin forces it. */
const DELETE_SLACK_MS = 15_000;
/** How long a forced deletion may take to leave the API. */
const FORCED_DELETE_MS = 30_000;
/** How long refreshSecrets waits for the kubelet to write the new files (its Secret sync is periodic). */
const SECRET_SYNC_MS = 120_000;
const POLL_MS = 200;
/** While a deleted pod is not reported gone by the informer (its watch may be down), how often it is read instead. */
const GONE_POLL_MS = 1_000;

const notFound = (workerId: string): WorkerManagerError => new WorkerManagerError('WM_ERR_NOT_FOUND', `worker '${workerId}' does not exist`, { details: { workerId } });

const conflict = (workerId: string, state: WorkerState, operation: string): WorkerManagerError =>
  new WorkerManagerError('WM_ERR_CONFLICT', `cannot ${operation} worker '${workerId}': it is ${state.phase}`, { details: { workerId, phase: state.phase } });

function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}

/** Hash of a spec (names of secrets, never values) that tells a repeated create from a different one. */
const specHash = (spec: RuntimeSpec): string => createHash('sha256').update(canonical(spec)).digest('hex').slice(0, 32);

/**
 * The handlers of one plugin thread. The apiserver is the truth: each worker is one Pod (named from the instance and
 * worker id) with ownership labels, and its secret mounts are one Secret owned by that pod. Reads go to the apiserver;
 * the {@link PodWatcher}'s informer turns pod changes into events and enforces the pending timeout.
 */
export class KubernetesProvider {
  readonly #ctx: PluginContext<unknown>;
  readonly #config: ResolvedConfig;
  readonly #kubeConfig: KubeConfig;
  readonly #core: CoreV1Api;
  readonly #objects: WorkerObjects;
  readonly #namespace: string;
  readonly #keys: Keys;
  readonly #names: Names;
  readonly #owner: Record<string, string>;
  readonly #specHashKey: string;
  readonly #watcher: PodWatcher;
  readonly #forwards: PortForwards;
  #cleanupTimer: NodeJS.Timeout | undefined;

  constructor(ctx: PluginContext<unknown>, config: ResolvedConfig, kubeConfig: KubeConfig, namespace: string) {
    this.#ctx = ctx;
    this.#config = config;
    this.#kubeConfig = kubeConfig;
    this.#core = kubeConfig.makeApiClient(CoreV1Api);
    this.#namespace = namespace;
    this.#keys = new Keys(config.labelPrefix);
    this.#names = new Names(ctx.owner);
    this.#objects = new WorkerObjects({ core: this.#core, networking: kubeConfig.makeApiClient(NetworkingV1Api), namespace, names: this.#names, logger: ctx.logger });
    this.#owner = workerSelector(this.#keys, ctx.owner);
    this.#specHashKey = `${config.labelPrefix}/spec-hash`;
    this.#watcher = new PodWatcher({
      kubeConfig,
      core: this.#core,
      namespace,
      labelSelector: this.#selector(),
      keys: this.#keys,
      logger: ctx.logger,
      emit: (event) => ctx.emit(event),
      pendingTimeoutMs: config.pendingTimeoutMs,
      fail: (pod, reason) => this.#failPod(pod, reason),
    });
    this.#watcher.start();
    this.#forwards = new PortForwards({
      kubeConfig,
      namespace,
      podName: (workerId) => this.#names.pod(workerId),
      isAlive: async (workerId) => {
        const pod = await this.#readPod(workerId);
        return pod !== undefined && !isFinalState(stateOfPod(pod, this.#keys));
      },
      logger: ctx.logger,
    });
    const sweep = (): void => {
      this.cleanup().catch((error: unknown) => ctx.logger.warn('kubernetes provider: orphan cleanup failed', { error: error instanceof Error ? error.message : String(error) }));
    };
    sweep();
    if (config.cleanupIntervalMs > 0) {
      this.#cleanupTimer = setInterval(sweep, config.cleanupIntervalMs);
      this.#cleanupTimer.unref();
    }
    ctx.signal.addEventListener('abort', () => this.close(), { once: true });
  }

  /** Removes what a create that died half way left (see {@link WorkerObjects.removeOrphans}). */
  cleanup(): Promise<OrphanReport> {
    return this.#objects.removeOrphans(this.#selector(), this.#keys.workerId, this.#config.orphanGraceMs, async (workerId) => (await this.#readPod(workerId)) !== undefined);
  }

  handlers(): ProviderHandlers {
    return {
      createWorker: (p, call) => this.createWorker(p.workerId, p.spec, p.secrets ?? [], call),
      terminateWorker: (p) => this.terminateWorker(p.workerId, p.gracePeriodMs),
      getWorkerStatus: (p) => this.getWorkerStatus(p.workerId),
      listWorkers: (p) => this.listWorkers(p.labels),
      getLogs: (p, call) => this.getLogs(p.workerId, p.options ?? {}, call),
      getCapacity: () => this.getCapacity(),
      executeCommand: (p, call) => this.executeCommand(p.workerId, p.command, p.timeoutMs, call),
      restartWorker: (p) => this.restartWorker(p.workerId, p.secrets),
      refreshSecrets: (p) => this.refreshSecrets(p.workerId, p.secrets, p.signal),
      portForward: (p) => this.portForward(p.workerId, p.remotePort, p.localPort),
      close: () => this.close(),
    };
  }

  close(): void {
    clearInterval(this.#cleanupTimer);
    this.#watcher.stop();
    this.#forwards.closeAll();
  }

  #selector(extra: Record<string, string> = {}): string {
    return Object.entries({ ...this.#owner, ...extra })
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
  }

  // ---------------------------------------------------------------- reads

  /** The worker's pod; undefined when there is none or it is not this instance's. */
  async #readPod(workerId: string): Promise<V1Pod | undefined> {
    let pod: V1Pod;
    try {
      pod = await this.#core.readNamespacedPod({ name: this.#names.pod(workerId), namespace: this.#namespace });
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw mapKubeError(error, 'read pod', { workerId });
    }
    const labels = pod.metadata?.labels ?? {};
    const ours = Object.entries(this.#owner).every(([k, v]) => labels[k] === v) && labels[this.#keys.workerId] === workerId;
    return ours ? pod : undefined;
  }

  async #requirePod(workerId: string): Promise<V1Pod> {
    const pod = await this.#readPod(workerId);
    if (pod === undefined) throw notFound(workerId);
    return pod;
  }

  #toWorker(pod: V1Pod, state: WorkerState = stateOfPod(pod, this.#keys)): Worker {
    const internal = new Set([this.#keys.workerId, this.#specHashKey]);
    const labels = Object.fromEntries(Object.entries(pod.metadata?.labels ?? {}).filter(([k]) => !internal.has(k)));
    const worker: Worker = {
      workerId: pod.metadata?.labels?.[this.#keys.workerId] ?? '',
      state,
      labels,
      createdAt: pod.metadata?.annotations?.[this.#keys.createdAt] ?? new Date(pod.metadata?.creationTimestamp ?? Date.now()).toISOString(),
      providerRef: `${this.#namespace}/${pod.metadata?.name ?? ''}`,
    };
    if (pod.status?.podIP !== undefined && pod.status.podIP !== '') worker.endpoints = [{ name: 'pod', address: pod.status.podIP }];
    return worker;
  }

  async getWorkerStatus(workerId: string): Promise<WorkerState> {
    return stateOfPod(await this.#requirePod(workerId), this.#keys);
  }

  async #listPods(): Promise<V1Pod[]> {
    try {
      return (await this.#core.listNamespacedPod({ namespace: this.#namespace, labelSelector: this.#selector() })).items;
    } catch (error) {
      throw mapKubeError(error, 'list pods', {});
    }
  }

  async listWorkers(labels: Record<string, string> | undefined): Promise<Worker[]> {
    const wanted = Object.entries(labels ?? {});
    // Filtered here, not by a label selector: a spec's label value may be one a selector cannot spell.
    return (await this.#listPods())
      .filter((pod) => pod.metadata?.labels?.[this.#keys.workerId] !== undefined)
      .filter((pod) => wanted.every(([k, v]) => pod.metadata?.labels?.[k] === v))
      .map((pod) => this.#toWorker(pod));
  }

  // ---------------------------------------------------------------- create

  /**
   * Creates the worker's Secret (when it has secret mounts), then its Pod, then makes the pod the Secret's owner, and
   * returns once the apiserver has accepted the pod: the state is Starting with why it waits (Scheduling, most
   * often). Scheduling, the image and the start are the informer's to report. A repeated create answers the pod as it
   * is; a different spec under the same id is WM_ERR_ALREADY_EXISTS.
   */
  async createWorker(workerId: string, spec: RuntimeSpec, secrets: readonly SecretMount[], call: CallContext): Promise<Worker> {
    const hash = specHash(spec);
    const plan = planPod({
      workerId,
      spec,
      secrets,
      config: this.#config,
      keys: this.#keys,
      names: this.#names,
      owner: this.#ctx.owner,
      createdAt: new Date().toISOString(),
      correlationId: call.correlationId,
      restartCount: 0,
    });
    plan.pod.metadata!.annotations![this.#specHashKey] = hash;
    const policy = planNetworkPolicy(spec, this.#names.networkPolicy(workerId), workerSelector(this.#keys, this.#ctx.owner, workerId));
    if (plan.secret !== undefined || policy !== undefined) {
      // A repeated create must not replace the Secret or policy of the worker that exists. Without either, the pod's
      // create alone tells (409), and the read it would cost is saved.
      const existing = await this.#readPod(workerId);
      if (existing !== undefined) return this.#existing(existing, hash, workerId);
    }
    // The Secret first: a pod whose env names a missing Secret would fail its container config instead of waiting.
    if (plan.secret !== undefined) await this.#objects.putSecret(plan.secret, workerId);
    // The isolation policy before the pod too, so the worker never runs without it.
    if (policy !== undefined) await this.#objects.putPolicy(policy, workerId);
    let pod: V1Pod;
    try {
      pod = await this.#core.createNamespacedPod({ namespace: this.#namespace, body: plan.pod });
    } catch (error) {
      if (isConflict(error)) {
        const raced = await this.#readPod(workerId);
        if (raced !== undefined) return this.#existing(raced, hash, workerId);
      }
      if (plan.secret !== undefined) await this.#objects.deleteSecret(workerId);
      if (policy !== undefined) await this.#objects.deletePolicy(workerId);
      throw mapKubeError(error, 'create pod', { workerId });
    }
    if (plan.secret !== undefined) await this.#objects.ownSecret(workerId, pod);
    if (policy !== undefined) await this.#objects.setPolicyOwner(workerId, pod);
    const state = stateOfPod(pod, this.#keys);
    this.#watcher.track(workerId, state);
    this.#ctx.emit({ type: 'WorkerCreated', workerId, providerRef: `${this.#namespace}/${pod.metadata?.name ?? ''}`, timestamp: new Date().toISOString() });
    this.#ctx.logger.info('kubernetes provider: pod accepted', { workerId, pod: pod.metadata?.name, namespace: this.#namespace });
    return this.#toWorker(pod, state);
  }

  #existing(pod: V1Pod, hash: string, workerId: string): Worker {
    if (pod.metadata?.annotations?.[this.#specHashKey] !== hash) {
      throw new WorkerManagerError('WM_ERR_ALREADY_EXISTS', `worker '${workerId}' exists with a different spec`, { details: { workerId } });
    }
    return this.#toWorker(pod);
  }

  // ---------------------------------------------------------------- deletion

  async #patchPod(workerId: string, body: object): Promise<V1Pod | undefined> {
    try {
      return await this.#core.patchNamespacedPod({ name: this.#names.pod(workerId), namespace: this.#namespace, body }, MERGE_PATCH);
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw mapKubeError(error, 'patch pod', { workerId });
    }
  }

  async #deletePod(workerId: string, graceSeconds: number, uid: string | undefined): Promise<void> {
    try {
      await this.#core.deleteNamespacedPod({
        name: this.#names.pod(workerId),
        namespace: this.#namespace,
        body: { gracePeriodSeconds: graceSeconds, ...(uid === undefined ? {} : { preconditions: { uid } }) },
      });
    } catch (error) {
      // Gone already, or (409 on the uid precondition) replaced by a new pod of the same worker: nothing to delete.
      if (!isNotFound(error) && !isConflict(error)) throw mapKubeError(error, 'delete pod', { workerId });
    }
  }

  /**
   * Waits until the pod of `uid` is gone: told by the informer (the deleted pod, with its final status), or found by
   * reading the pod every GONE_POLL_MS, which also covers a watch that is down. Returns the last version seen.
   */
  async #awaitGone(workerId: string, uid: string | undefined, timeoutMs: number, last: V1Pod): Promise<{ gone: boolean; last: V1Pod }> {
    const deadline = Date.now() + timeoutMs;
    const reported = uid === undefined ? undefined : this.#watcher.whenGone(uid);
    let seen = last;
    try {
      for (;;) {
        const tick = new AbortController();
        const final = await Promise.race([
          sleep(Math.max(0, Math.min(GONE_POLL_MS, deadline - Date.now())), undefined, { signal: tick.signal }).then(
            () => undefined,
            () => undefined,
          ),
          reported?.promise,
        ]);
        tick.abort();
        if (final !== undefined) return { gone: true, last: final };
        const pod = await this.#readPod(workerId);
        if (pod === undefined || (uid !== undefined && pod.metadata?.uid !== uid)) return { gone: true, last: seen };
        seen = pod;
        if (Date.now() >= deadline) return { gone: false, last: seen };
      }
    } finally {
      reported?.cancel();
    }
  }

  /**
   * Deletes the pod gracefully (the kubelet sends SIGTERM, then SIGKILL after the grace period), then forces the
   * deletion if the pod is still there after the grace period and some slack. Marks it first, so the watcher knows the
   * plugin asked for it, and drops the finalizer a failed pod was kept with.
   */
  async #stopPod(workerId: string, pod: V1Pod, why: 'terminate' | 'restart', graceMs: number): Promise<V1Pod> {
    const uid = pod.metadata?.uid;
    await this.#patchPod(workerId, { metadata: { annotations: { [this.#keys.stop]: why }, finalizers: null } });
    const graceSeconds = Math.ceil(graceMs / 1_000);
    await this.#deletePod(workerId, graceSeconds, uid);
    let r = await this.#awaitGone(workerId, uid, graceMs + DELETE_SLACK_MS, pod);
    if (!r.gone) {
      this.#ctx.logger.warn('kubernetes provider: pod still there after its grace period, forcing its deletion', { workerId });
      await this.#deletePod(workerId, 0, uid);
      r = await this.#awaitGone(workerId, uid, FORCED_DELETE_MS, r.last);
      if (!r.gone) throw new WorkerManagerError('WM_ERR_TIMEOUT', `worker '${workerId}': its pod was not removed after a forced deletion`, { details: { workerId } });
    }
    return r.last;
  }

  /** Records a final state the plugin decided, keeps the pod (finalizer) so it stays readable, and stops its containers. */
  async #failPod(pod: V1Pod, reason: string): Promise<void> {
    const workerId = pod.metadata?.labels?.[this.#keys.workerId];
    if (workerId === undefined) return;
    await this.#patchPod(workerId, { metadata: { annotations: { [this.#keys.failure]: reason }, finalizers: [this.#keys.finalizer] } });
    await this.#deletePod(workerId, pod.spec?.terminationGracePeriodSeconds ?? 0, pod.metadata?.uid);
    this.#ctx.logger.info('kubernetes provider: worker failed and its pod stopped', { workerId, reason });
  }

  /**
   * Whether the worker has a Secret and a NetworkPolicy beside its pod, as the pod's annotations say (a worker without
   * secret mounts has no Secret, one with Default isolation no policy); both when a pod does not say.
   */
  #companions(pod: V1Pod): { secret: boolean; policy: boolean } {
    const annotations = pod.metadata?.annotations ?? {};
    const mounts = annotations[this.#keys.secrets];
    const isolation = annotations[this.#keys.isolation];
    return { secret: mounts !== '[]', policy: isolation === undefined || isolation === 'Strict' || isolation === 'Complete' };
  }

  async terminateWorker(workerId: string, gracePeriodMs: number | undefined): Promise<{ workerId: string; state: WorkerState; alreadyGone: boolean }> {
    const pod = await this.#readPod(workerId);
    if (pod === undefined) {
      await Promise.all([this.#objects.deleteSecret(workerId), this.#objects.deletePolicy(workerId)]);
      return { workerId, state: { phase: 'Terminated' }, alreadyGone: true };
    }
    const before = stateOfPod(pod, this.#keys);
    this.#forwards.closeWorker(workerId);
    this.#watcher.forget(workerId);
    const last = await this.#stopPod(workerId, pod, 'terminate', gracePeriodMs ?? this.#config.defaultGracePeriodMs);
    // Garbage collection would remove them too; deleting them now makes terminate leave nothing behind at once. Only
    // those the worker has: each call costs the apiserver a request (and a TLS handshake, as client-node makes them).
    const companions = this.#companions(pod);
    await Promise.all([companions.secret ? this.#objects.deleteSecret(workerId) : undefined, companions.policy ? this.#objects.deletePolicy(workerId) : undefined]);
    if (isFinalState(before)) return { workerId, state: before, alreadyGone: true };
    const exitCode = last.status?.containerStatuses?.[0]?.state?.terminated?.exitCode;
    const state: WorkerState = exitCode === undefined ? { phase: 'Terminated' } : { phase: 'Terminated', exitCode };
    const timestamp = new Date().toISOString();
    this.#ctx.emit({ type: 'WorkerStateChanged', workerId, oldState: before, newState: state, timestamp });
    this.#ctx.emit(exitCode === undefined ? { type: 'WorkerTerminated', workerId, timestamp } : { type: 'WorkerTerminated', workerId, exitCode, timestamp });
    this.#ctx.logger.info('kubernetes provider: worker removed', { workerId });
    return { workerId, state, alreadyGone: false };
  }

  // ---------------------------------------------------------------- restart

  /**
   * Deletes the pod and creates it again under the same name, from the same pod spec, with the restart count one
   * higher. The Secret is detached from the old pod first (or garbage collection would take it with it); with
   * `secrets`, its values are replaced before the new pod starts. Waits for Running, like the other providers.
   */
  async restartWorker(workerId: string, secrets: readonly SecretMount[] | undefined): Promise<Worker> {
    const pod = await this.#requirePod(workerId);
    const annotations = { ...pod.metadata?.annotations };
    const count = Number(annotations[this.#keys.restartCount] ?? '0') + 1;
    const secret = await this.#objects.readSecret(workerId);
    if (secret !== undefined) {
      const data = { ...secret.data };
      for (const m of secrets ?? []) {
        const key = m.strategy === 'env' ? envKey(m.envName) : fileKey(m.name, m.path);
        if (key in data) data[key] = Buffer.from(m.value).toString('base64');
      }
      await this.#objects.putSecret({ apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata: { name: this.#names.secret(workerId), labels: secret.metadata?.labels ?? {} }, data }, workerId);
    }
    const isolated = (await this.#objects.readPolicy(workerId)) !== undefined;
    if (isolated) await this.#objects.setPolicyOwner(workerId, null);
    this.#watcher.forget(workerId);
    await this.#stopPod(workerId, pod, 'restart', this.#config.defaultGracePeriodMs);
    delete annotations[this.#keys.stop];
    delete annotations[this.#keys.failure];
    annotations[this.#keys.restartCount] = String(count);
    const { nodeName: _node, ...spec } = pod.spec!;
    let fresh: V1Pod;
    try {
      fresh = await this.#core.createNamespacedPod({
        namespace: this.#namespace,
        body: { apiVersion: 'v1', kind: 'Pod', metadata: { name: pod.metadata!.name!, labels: { ...pod.metadata?.labels }, annotations }, spec },
      });
    } catch (error) {
      throw mapKubeError(error, 'recreate pod', { workerId });
    }
    if (secret !== undefined) await this.#objects.ownSecret(workerId, fresh);
    if (isolated) await this.#objects.setPolicyOwner(workerId, fresh);
    this.#watcher.track(workerId, stateOfPod(fresh, this.#keys));
    const deadline = Date.now() + this.#config.startTimeoutMs;
    for (;;) {
      const now = await this.#requirePod(workerId);
      const state = stateOfPod(now, this.#keys);
      if (state.phase === 'Running' || isFinalState(state) || Date.now() > deadline) return this.#toWorker(now, state);
      await sleep(POLL_MS);
    }
  }

  // ---------------------------------------------------------------- secrets

  /**
   * Writes new values into the worker's Secret; the kubelet swaps the files of its Secret volumes atomically (the
   * `..data` symlink). Returns once the worker reads the new content (checked with `cat` through exec; a kubelet syncs
   * Secret volumes periodically, up to a minute on a real node), then sends `signal` to PID 1 with `kill` through exec.
   */
  async refreshSecrets(workerId: string, mounts: readonly SecretMount[], signal: string | undefined): Promise<{ workerId: string; updated: number }> {
    const pod = await this.#requirePod(workerId);
    const state = stateOfPod(pod, this.#keys);
    if (isFinalState(state) || state.phase === 'Terminating') throw conflict(workerId, state, 'refresh the secrets of');
    const secret = await this.#objects.readSecret(workerId);
    const files = mounts.flatMap((m) => (m.strategy === 'env' ? [] : [{ key: fileKey(m.name, m.path), target: this.#fileTarget(pod, m.name, m.path), value: m.value }]));
    const known = files.filter((f) => secret?.data?.[f.key] !== undefined);
    if (known.length > 0) {
      const data = Object.fromEntries(known.map((f) => [f.key, Buffer.from(f.value).toString('base64')]));
      await this.#objects.patchSecretData(workerId, data);
      for (const f of known) await this.#awaitFile(workerId, f.target, f.value);
    }
    if (signal !== undefined) {
      const r = await this.#exec(workerId, ['kill', '-s', signal.replace(/^SIG/, ''), '1'], 30_000, new AbortController().signal).catch(() => undefined);
      // A signal that ends the worker also ends the exec that sent it: the exec is then killed with the container (137)
      // or its stream breaks; `kill` itself failing exits 1 in a worker that is still running.
      if (r !== undefined && r.exitCode !== 0 && r.exitCode !== 137) {
        const after = await this.#readPod(workerId);
        const now = after === undefined ? undefined : stateOfPod(after, this.#keys);
        if (now !== undefined && (now.phase === 'Running' || now.phase === 'Starting')) {
          throw new WorkerManagerError('WM_ERR_PROVIDER_SPECIFIC', `could not send ${signal} to worker '${workerId}'`, { details: { workerId, exitCode: r?.exitCode } });
        }
      }
    }
    return { workerId, updated: known.length };
  }

  /** Where a file mount is in the container: the Secret volume's mount path and the item's path, as the pod says. */
  #fileTarget(pod: V1Pod, name: string, specPath: string): string {
    const key = fileKey(name, specPath);
    const container = pod.spec?.containers[0];
    for (const volume of pod.spec?.volumes ?? []) {
      const item = volume.secret?.items?.find((i) => i.key === key);
      const mount = container?.volumeMounts?.find((m) => m.name === volume.name);
      if (item !== undefined && mount !== undefined) return path.posix.join(mount.mountPath, item.path);
    }
    return secretFilePath(this.#config.secretsMountPath, specPath);
  }

  async #awaitFile(workerId: string, target: string, value: string): Promise<void> {
    const deadline = Date.now() + SECRET_SYNC_MS;
    while (Date.now() < deadline) {
      const r = await this.#exec(workerId, ['cat', target], 30_000, new AbortController().signal);
      if (r.exitCode === 0 && r.stdout === value) return;
      await sleep(POLL_MS);
    }
    throw new WorkerManagerError('WM_ERR_TIMEOUT', `worker '${workerId}': the kubelet did not write the refreshed secret file within ${SECRET_SYNC_MS} ms`, { details: { workerId } });
  }

  // ---------------------------------------------------------------- logs, exec, capacity

  async getLogs(workerId: string, options: LogOptions, call: CallContext): Promise<AsyncIterable<LogChunk>> {
    const pod = await this.#requirePod(workerId);
    return readLogs({ kubeConfig: this.#kubeConfig, core: this.#core, namespace: this.#namespace, pod: pod.metadata!.name!, workerId }, options, call.signal);
  }

  #exec(workerId: string, command: string[], timeoutMs: number | undefined, signal: AbortSignal): Promise<ExecutionResult> {
    return execInPod({ kubeConfig: this.#kubeConfig, namespace: this.#namespace, pod: this.#names.pod(workerId), workerId, command, timeoutMs, maxBytes: this.#config.maxExecOutputBytes, signal });
  }

  async executeCommand(workerId: string, command: readonly string[], timeoutMs: number | undefined, call: CallContext): Promise<ExecutionResult> {
    const pod = await this.#requirePod(workerId);
    const state = stateOfPod(pod, this.#keys);
    if (state.phase !== 'Running' && !(state.phase === 'Starting' && state.pendingReason === 'HealthCheck')) throw conflict(workerId, state, 'execute a command in');
    return this.#exec(workerId, [...command], timeoutMs, call.signal);
  }

  /** A local endpoint reaching `remotePort` of the worker's pod (see {@link PortForwards}). */
  async portForward(workerId: string, remotePort: number, localPort: number | undefined): Promise<{ endpoint: string }> {
    const pod = await this.#requirePod(workerId);
    const state = stateOfPod(pod, this.#keys);
    if (isFinalState(state) || state.phase === 'Terminating') throw conflict(workerId, state, 'forward a port of');
    return { endpoint: await this.#forwards.open(workerId, remotePort, localPort) };
  }

  async getCapacity(): Promise<CapacityInfo> {
    const capacity = await readCapacity(this.#core, this.#config);
    const active = (await this.#listPods()).filter((pod) => {
      const s = stateOfPod(pod, this.#keys);
      return !isFinalState(s) && pod.metadata?.deletionTimestamp === undefined;
    }).length;
    return { ...capacity, activeWorkers: active };
  }
}
