import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PatchStrategy, setHeaderOptions, type CoreV1Api, type V1Container, type V1ContainerState, type V1ContainerStatus, type V1Pod, type V1PodStatus } from '@kubernetes/client-node';
import type Docker from 'dockerode';
import { ContainerConfigError, containerConfig, dockerName, podLabels } from './containerConfig.ts';
import { execInContainer } from './dockerExec.ts';
import { checkImage, terminationMessage } from './containerRuntime.ts';
import { PodConditions, podStatus, rfc3339 } from './podStatus.ts';
import type { EventType, PodEvents } from './podEvents.ts';
import { startContainerProbes } from './probes.ts';
import { isNotFound, mountVolumes, readObjectData, VolumeMountError, type MountedVolumes } from './podVolumes.ts';

/** The image of each pod's sandbox container (the kubelet's pause container): holds the pod's network namespace. */
export const SANDBOX_IMAGE = 'local/busybox:latest';

export interface PodWorkerDeps {
  docker: Docker;
  core: CoreV1Api;
  nodeName: string;
  /** The apiserver URL, for the containers' cluster label. */
  cluster: string;
  hostIP: string;
  events: PodEvents;
  /** Folder of this agent's pod folders (volumes, termination logs). */
  rootDir: string;
  log(message: string): void;
}

type Terminated = NonNullable<V1ContainerState['terminated']>;

/** What the agent knows about one container of the pod, across its restarts. */
interface ContainerRecord {
  spec: V1Container;
  init: boolean;
  restartCount: number;
  containerId?: string;
  previousContainerId?: string;
  imageId?: string;
  state: V1ContainerState;
  lastState: V1ContainerState;
  ready: boolean;
  started: boolean;
  stopProbes: () => void;
  /** Earliest time of the next start after a crash (CrashLoopBackOff), and that back-off in seconds. */
  backoffUntil: number;
  backoffSeconds: number;
  /** The exit of the current Docker container, once `wait` returned. */
  exited?: Promise<void>;
}

const MAX_BACKOFF_MS = 300_000;
const BACKOFF_BASE_MS = 10_000;
const RETRY_MS = 2_000;

/**
 * Plays the kubelet for one pod bound to the agent's node: runs its containers in Docker (a sandbox container holds
 * the network namespace, as dockershim's pause container did), restarts them by restartPolicy with the kubelet's
 * back-off, runs probes, and reports pod status. One sync runs at a time; any change just asks for another sync.
 */
export class PodWorker {
  readonly #deps: PodWorkerDeps;
  #pod: V1Pod;
  readonly #podDir: string;
  readonly #records = new Map<string, ContainerRecord>();
  #sandboxId: string | undefined;
  #podIP = '';
  #volumes: MountedVolumes | undefined;
  #volumesStale = true;
  #volumeError: string | undefined;
  #startTime: Date | undefined;
  #terminal = false;
  #deleted = false;
  #finished = false;
  #lastStatus = '';
  readonly #conditions = new PodConditions();
  #running: Promise<void> | undefined;
  #dirty = false;
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Infinity;

  constructor(deps: PodWorkerDeps, pod: V1Pod) {
    this.#deps = deps;
    this.#pod = pod;
    this.#podDir = path.join(deps.rootDir, 'pods', pod.metadata?.uid ?? 'unknown');
    for (const spec of pod.spec?.initContainers ?? []) this.#records.set(spec.name, newRecord(spec, true));
    for (const spec of pod.spec?.containers ?? []) this.#records.set(spec.name, newRecord(spec, false));
  }

  get pod(): V1Pod {
    return this.#pod;
  }

  get podIP(): string {
    return this.#podIP;
  }

  get finished(): boolean {
    return this.#finished;
  }

  /** The Docker container of a pod container (the previous one with `previous`), for logs and exec. */
  containerId(name: string, previous = false): string | undefined {
    const record = this.#records.get(name);
    return previous ? record?.previousContainerId : record?.containerId;
  }

  /** Why a container is not running yet (ContainerCreating, ErrImageNeverPull, CrashLoopBackOff, ...). */
  waitingReason(name: string): string | undefined {
    return this.#records.get(name)?.state.waiting?.reason;
  }

  /** The pod object changed (status patches, deletion timestamp, labels). */
  update(pod: V1Pod): void {
    this.#pod = pod;
    this.#kick();
  }

  /** The pod is gone from the API without this worker deleting it (a forced deletion): kill and clean up. */
  removed(): void {
    this.#deleted = true;
    this.#kick();
  }

  /** A Secret or ConfigMap in the pod's namespace changed: rewrite the volumes that project it. */
  refreshVolumes(): void {
    this.#volumesStale = true;
    this.#kick();
  }

  /** Stops everything at once (agent shutdown) and waits until it is cleaned up. */
  async shutdown(): Promise<void> {
    this.#deleted = true;
    this.#kick();
    while (this.#running !== undefined) await this.#running;
  }

  #kick(): void {
    this.#dirty = true;
    if (this.#running !== undefined) return;
    this.#running = (async () => {
      // Yield first: the loop must not finish (and clear #running) before #running is assigned.
      await Promise.resolve();
      while (this.#dirty && !this.#finished) {
        this.#dirty = false;
        try {
          await this.#sync();
        } catch (error) {
          this.#deps.log(`pod ${this.#key()}: sync failed, retrying: ${error instanceof Error ? error.stack : String(error)}`);
          this.#kickAt(Date.now() + RETRY_MS);
        }
      }
      this.#running = undefined;
    })();
  }

  #kickAt(at: number): void {
    if (at >= this.#timerAt) return;
    clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(
      () => {
        this.#timerAt = Infinity;
        this.#kick();
      },
      Math.max(0, at - Date.now()),
    );
  }

  #event(type: EventType, reason: string, message: string, record?: ContainerRecord): void {
    this.#deps.events.record(this.#pod, type, reason, message, record === undefined ? undefined : { name: record.spec.name, init: record.init });
  }

  #key(): string {
    return `${this.#pod.metadata?.namespace ?? ''}/${this.#pod.metadata?.name ?? ''}`;
  }

  async #sync(): Promise<void> {
    if (this.#deleted) {
      await this.#killAll(0);
      await this.#cleanUp();
      return;
    }
    if (this.#pod.metadata?.deletionTimestamp !== undefined && this.#pod.metadata.deletionTimestamp !== null) {
      await this.#terminateGracefully();
      return;
    }
    if (this.#terminal) {
      // Nothing runs any more; only a final status that failed to reach the apiserver may still be owed.
      await this.#reportStatus();
      return;
    }
    this.#startTime ??= rfc3339(new Date());
    if (await this.#prepareSandbox()) await this.#runContainers();
    await this.#reportStatus();
  }

  /** Sandbox and volumes; false (status says ContainerCreating) while a volume cannot be set up. */
  async #prepareSandbox(): Promise<boolean> {
    if (this.#volumesStale) {
      this.#volumesStale = false;
      try {
        this.#volumes = await mountVolumes(this.#deps.core, this.#pod, this.#podDir, this.#podIP);
        this.#volumeError = undefined;
      } catch (error) {
        if (!(error instanceof VolumeMountError)) throw error;
        // The kubelet retries mounting until it works (FailedMount events); so does the agent.
        if (error.message !== this.#volumeError) this.#event('Warning', 'FailedMount', `MountVolume.SetUp failed: ${error.message}`);
        this.#volumeError = error.message;
        this.#volumesStale = true;
        this.#kickAt(Date.now() + RETRY_MS);
      }
    }
    if (this.#volumes === undefined) return false;
    if (this.#sandboxId === undefined) {
      const hostNetwork = this.#pod.spec?.hostNetwork === true;
      const sandbox = await this.#deps.docker.createContainer({
        name: dockerName(this.#pod, 'POD', 0),
        Image: SANDBOX_IMAGE,
        Cmd: ['sleep', '2147483647'],
        Hostname: hostNetwork ? undefined : (this.#pod.spec?.hostname ?? this.#pod.metadata?.name),
        Labels: podLabels(this.#pod, this.#deps, 'POD'),
        HostConfig: { NetworkMode: hostNetwork ? 'host' : 'bridge', RestartPolicy: { Name: 'no' } },
      });
      this.#sandboxId = sandbox.id;
      await sandbox.start();
      const info = await sandbox.inspect();
      this.#podIP = hostNetwork ? this.#deps.hostIP : (info.NetworkSettings.Networks['bridge']?.IPAddress ?? '');
    }
    return true;
  }

  async #runContainers(): Promise<void> {
    const policy = this.#pod.spec?.restartPolicy ?? 'Always';
    for (const record of this.#records.values()) {
      if (!record.init) continue;
      const terminated = record.state.terminated;
      if (terminated?.exitCode === 0) continue;
      if (record.state.running !== undefined) return;
      if (terminated !== undefined && policy === 'Never') {
        this.#terminal = true; // an init container failed for good: the pod fails
        return;
      }
      await this.#ensureStarted(record, policy === 'Never' ? 'Never' : 'OnFailure');
      return;
    }
    for (const record of this.#records.values()) {
      if (!record.init) await this.#ensureStarted(record, policy);
    }
  }

  async #ensureStarted(record: ContainerRecord, policy: string): Promise<void> {
    if (record.state.running !== undefined) return;
    const terminated = record.state.terminated;
    if (terminated !== undefined) {
      const restart = policy === 'Always' || (policy === 'OnFailure' && terminated.exitCode !== 0);
      if (!restart) return;
      if (Date.now() < record.backoffUntil) {
        record.lastState = { terminated };
        if (record.state.waiting?.reason !== 'CrashLoopBackOff') this.#event('Warning', 'BackOff', 'Back-off restarting failed container', record);
        const meta = this.#pod.metadata ?? {};
        record.state = {
          waiting: {
            reason: 'CrashLoopBackOff',
            message: `back-off ${record.backoffSeconds}s restarting failed container=${record.spec.name} pod=${meta.name ?? ''}_${meta.namespace ?? ''}(${meta.uid ?? ''})`,
          },
        };
        this.#kickAt(record.backoffUntil);
        return;
      }
    } else if (record.state.waiting?.reason === 'CrashLoopBackOff' && Date.now() < record.backoffUntil) {
      this.#kickAt(record.backoffUntil);
      return;
    }
    await this.#start(record);
  }

  async #start(record: ContainerRecord): Promise<void> {
    const { docker } = this.#deps;
    const spec = record.spec;
    const image = spec.image ?? '';
    const imageProblem = await checkImage(docker, image, spec.imagePullPolicy ?? 'IfNotPresent', record.state.waiting?.reason);
    if (imageProblem !== undefined) {
      if (record.state.waiting?.reason !== imageProblem.reason) {
        const reason = imageProblem.reason === 'ErrImagePull' ? 'Failed' : imageProblem.reason === 'ImagePullBackOff' ? 'BackOff' : (imageProblem.reason ?? 'Failed');
        this.#event('Warning', reason, imageProblem.message ?? '', record);
      }
      record.state = { waiting: imageProblem };
      this.#kickAt(Date.now() + 5_000);
      return;
    }
    this.#event('Normal', 'Pulled', `Container image "${image}" already present on machine`, record);
    // Every start after the first is a restart: a new Docker container, counted, the old exit kept as lastState.
    const restarting = record.containerId !== undefined;
    const attempt = restarting ? record.restartCount + 1 : 0;
    const logDir = path.join(this.#podDir, 'containers', spec.name);
    const terminationLogPath = path.join(logDir, `${attempt}-termination-log`);
    await mkdir(logDir, { recursive: true });
    await writeFile(terminationLogPath, '', { mode: 0o666 });
    let options: Docker.ContainerCreateOptions;
    try {
      options = await containerConfig(this.#pod, spec, {
        nodeName: this.#deps.nodeName,
        cluster: this.#deps.cluster,
        sandboxId: this.#sandboxId ?? '',
        hostNetwork: this.#pod.spec?.hostNetwork === true,
        podIP: this.#podIP,
        hostIP: this.#deps.hostIP,
        attempt,
        volumePaths: this.#volumes?.paths ?? new Map(),
        readOnlyVolumes: this.#volumes?.readOnly ?? new Set(),
        terminationLogPath,
        readKey: async (kind, name, key) => (await this.#readData(kind, name))?.get(key),
        readAll: async (kind, name) => {
          const data = await this.#readData(kind, name);
          return data === undefined ? undefined : Object.fromEntries(data);
        },
      });
    } catch (error) {
      if (!(error instanceof ContainerConfigError)) throw error;
      if (record.state.waiting?.reason !== 'CreateContainerConfigError') this.#event('Warning', 'Failed', `Error: ${error.message}`, record);
      record.state = { waiting: { reason: 'CreateContainerConfigError', message: error.message } };
      this.#kickAt(Date.now() + RETRY_MS);
      return;
    }
    // A container of an earlier attempt with this name (agent restart) would make the create fail.
    await docker.getContainer(options.name ?? '').remove({ force: true }).catch(() => undefined);
    const container = await docker.createContainer(options);
    this.#event('Normal', 'Created', `Created container ${spec.name}`, record);
    if (restarting) {
      const previousExit = record.state.terminated ?? record.lastState.terminated;
      if (previousExit !== undefined) record.lastState = { terminated: previousExit };
      record.restartCount += 1;
      // Only the last dead container is kept, as the kubelet keeps it for `logs --previous`.
      if (record.previousContainerId !== undefined) await docker.getContainer(record.previousContainerId).remove({ force: true }).catch(() => undefined);
      record.previousContainerId = record.containerId;
    }
    record.containerId = container.id;
    record.imageId = `docker://${(await docker.getImage(image).inspect()).Id}`;
    try {
      await container.start();
      this.#event('Normal', 'Started', `Started container ${spec.name}`, record);
    } catch (error) {
      this.#event('Warning', 'Failed', `Error: ${error instanceof Error ? error.message : String(error)}`, record);
      // Docker created the container but could not run its command (not found, not executable).
      const info = await container.inspect();
      record.state = {
        terminated: {
          exitCode: info.State.ExitCode || 128,
          reason: 'ContainerCannotRun',
          message: error instanceof Error ? error.message : String(error),
          startedAt: rfc3339(new Date()),
          finishedAt: rfc3339(new Date()),
          containerID: `docker://${container.id}`,
        },
      };
      this.#crashed(record);
      return;
    }
    const info = await container.inspect();
    record.state = { running: { startedAt: rfc3339(new Date(info.State.StartedAt)) } };
    record.started = spec.startupProbe === undefined;
    record.ready = spec.readinessProbe === undefined && !record.init;
    this.#startProbes(record, container.id);
    record.exited = container.wait().then(
      () => this.#onExit(record, container.id, terminationLogPath),
      () => this.#onExit(record, container.id, terminationLogPath),
    );
  }

  async #readData(kind: 'Secret' | 'ConfigMap', name: string): Promise<Map<string, string> | undefined> {
    const data = await readObjectData(this.#deps.core, kind, this.#pod.metadata?.namespace ?? 'default', name);
    return data === undefined ? undefined : new Map([...data].map(([key, value]) => [key, value.toString('utf8')]));
  }

  #startProbes(record: ContainerRecord, containerId: string): void {
    if (record.init) return;
    // A probe result about an earlier container of this name (before a restart) is stale.
    const current = (): boolean => record.containerId === containerId;
    const target = { docker: this.#deps.docker, containerId, podIP: this.#podIP, ports: record.spec.ports ?? [] };
    record.stopProbes = startContainerProbes(record.spec, target, {
      ready: (success, message) => {
        if (!current()) return;
        if (!success) this.#event('Warning', 'Unhealthy', `Readiness probe failed: ${message}`, record);
        record.ready = success;
        this.#kick();
      },
      started: () => {
        if (!current()) return;
        record.started = true;
        if (record.spec.readinessProbe === undefined) record.ready = true;
        this.#kick();
      },
      failed: (why) => {
        if (current()) void this.#kill(record, why);
      },
    });
  }

  /** Kills a container the kubelet way (preStop hook, then SIGTERM, SIGKILL after the grace period); its exit restarts it. */
  async #kill(record: ContainerRecord, why: string): Promise<void> {
    this.#deps.log(`pod ${this.#key()}: container ${record.spec.name}: ${why}`);
    const [probe = 'probe', detail = ''] = why.split(': ');
    this.#event('Warning', 'Unhealthy', `${probe.charAt(0).toUpperCase()}${probe.slice(1)}: ${detail}`, record);
    this.#event('Normal', 'Killing', `Container ${record.spec.name} failed ${probe.replace(' failed', '')}, will be restarted`, record);
    await this.#stopContainer(record, this.#pod.spec?.terminationGracePeriodSeconds ?? 30);
  }

  async #stopContainer(record: ContainerRecord, graceSeconds: number): Promise<void> {
    const id = record.containerId;
    if (id === undefined || record.state.running === undefined) return;
    record.stopProbes();
    const started = Date.now();
    const preStop = record.spec.lifecycle?.preStop?.exec?.command;
    if (preStop !== undefined && graceSeconds > 0) {
      await execInContainer(this.#deps.docker, id, preStop, graceSeconds * 1000).catch(() => undefined);
    }
    const remaining = Math.max(graceSeconds > 0 ? 2 : 0, Math.ceil(graceSeconds - (Date.now() - started) / 1000));
    await this.#deps.docker.getContainer(id).stop({ t: remaining }).catch(() => undefined);
    await record.exited;
  }

  async #onExit(record: ContainerRecord, containerId: string, terminationLogPath: string): Promise<void> {
    if (record.containerId !== containerId) return;
    record.stopProbes();
    const info = await this.#deps.docker.getContainer(containerId).inspect().catch(() => undefined);
    const exitCode = info?.State.ExitCode ?? 137;
    const terminated: Terminated = {
      exitCode,
      reason: info?.State.OOMKilled === true ? 'OOMKilled' : exitCode === 0 ? 'Completed' : 'Error',
      startedAt: info === undefined ? undefined : rfc3339(new Date(info.State.StartedAt)),
      finishedAt: rfc3339(info === undefined ? new Date() : new Date(info.State.FinishedAt)),
      containerID: `docker://${containerId}`,
    };
    const message = await terminationMessage(this.#deps.docker, record.spec, containerId, terminationLogPath, exitCode);
    if (message !== '') terminated.message = message;
    record.state = { terminated };
    record.ready = false;
    record.started = false;
    this.#crashed(record);
    this.#kick();
  }

  #crashed(record: ContainerRecord): void {
    // The kubelet restarts at once the first time, then backs off 10 s, 20 s, ... up to 5 minutes.
    const delay = record.restartCount === 0 ? 0 : Math.min(MAX_BACKOFF_MS, BACKOFF_BASE_MS * 2 ** (record.restartCount - 1));
    record.backoffUntil = Date.now() + delay;
    record.backoffSeconds = delay / 1000;
  }

  async #terminateGracefully(): Promise<void> {
    const grace = this.#pod.metadata?.deletionGracePeriodSeconds ?? this.#pod.spec?.terminationGracePeriodSeconds ?? 30;
    for (const record of this.#records.values()) {
      if (record.state.running !== undefined) this.#event('Normal', 'Killing', `Stopping container ${record.spec.name}`, record);
    }
    await Promise.all([...this.#records.values()].map((record) => this.#stopContainer(record, grace)));
    this.#terminal = true;
    await this.#reportStatus();
    const { name, namespace, uid } = this.#pod.metadata ?? {};
    // Only now is the object removed: the kubelet deletes with grace 0 once the containers are gone.
    await this.#deps.core
      // With a body the apiserver reads DeleteOptions from it alone (the query's gracePeriodSeconds would be ignored).
      .deleteNamespacedPod({ name: name ?? '', namespace: namespace ?? '', body: { gracePeriodSeconds: 0, preconditions: { uid } } })
      .catch((error: unknown) => {
        this.#deps.log(`pod ${this.#key()}: final delete: ${error instanceof Error ? error.message : String(error)}`);
        if (!isNotFound(error) && !(typeof error === 'object' && error !== null && (error as { code?: unknown }).code === 409)) throw error;
      });
    await this.#cleanUp();
  }

  async #killAll(graceSeconds: number): Promise<void> {
    await Promise.all([...this.#records.values()].map((record) => this.#stopContainer(record, graceSeconds)));
  }

  async #cleanUp(): Promise<void> {
    clearTimeout(this.#timer);
    const { docker } = this.#deps;
    const ids = [...this.#records.values()].flatMap((r) => [r.containerId, r.previousContainerId]);
    for (const id of [...ids, this.#sandboxId]) {
      if (id !== undefined) await docker.getContainer(id).remove({ force: true }).catch(() => undefined);
    }
    await rm(this.#podDir, { recursive: true, force: true });
    this.#finished = true;
  }

  async #reportStatus(): Promise<void> {
    const status = this.#status();
    const body = JSON.stringify(status);
    if (body === this.#lastStatus) return;
    const { name, namespace } = this.#pod.metadata ?? {};
    try {
      await this.#deps.core.patchNamespacedPodStatus(
        { name: name ?? '', namespace: namespace ?? '', body: { status } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      this.#lastStatus = body;
    } catch (error) {
      if (isNotFound(error)) return;
      throw error;
    }
  }

  #status(): V1PodStatus {
    const statuses = (init: boolean): V1ContainerStatus[] =>
      [...this.#records.values()].filter((r) => r.init === init).map((r) => this.#containerStatus(r));
    const status = podStatus({
      restartPolicy: this.#pod.spec?.restartPolicy ?? 'Always',
      initStatuses: statuses(true),
      containerStatuses: statuses(false),
      conditions: this.#conditions,
      hostIP: this.#deps.hostIP,
      podIP: this.#podIP,
      startTime: this.#startTime,
      qosClass: this.#pod.status?.qosClass,
    });
    if (status.phase === 'Succeeded' || status.phase === 'Failed') this.#terminal = true;
    return status;
  }

  /** convertToAPIContainerStatuses: a pod with init containers shows PodInitializing for every container not yet started. */
  #defaultWaitingReason(): string {
    return (this.#pod.spec?.initContainers ?? []).length > 0 ? 'PodInitializing' : 'ContainerCreating';
  }

  #containerStatus(record: ContainerRecord): V1ContainerStatus {
    // A container not tried yet waits for the pod (its volumes, its init containers); the volume error says why.
    const state: V1ContainerState =
      Object.keys(record.state).length > 0
        ? record.state
        : { waiting: { reason: this.#defaultWaitingReason(), ...(this.#volumeError === undefined ? {} : { message: this.#volumeError }) } };
    const status: V1ContainerStatus = {
      name: record.spec.name,
      image: record.spec.image ?? '',
      imageID: record.imageId ?? '',
      ready: record.ready && state.running !== undefined,
      restartCount: record.restartCount,
      started: record.started && state.running !== undefined,
      state,
      lastState: record.lastState,
    };
    if (record.containerId !== undefined) status.containerID = `docker://${record.containerId}`;
    return status;
  }
}

function newRecord(spec: V1Container, init: boolean): ContainerRecord {
  return { spec, init, restartCount: 0, state: {}, lastState: {}, ready: false, started: false, stopProbes: () => undefined, backoffUntil: 0, backoffSeconds: 0 };
}
