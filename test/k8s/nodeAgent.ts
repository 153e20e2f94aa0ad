import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  CoreV1Api,
  ListWatch,
  PatchStrategy,
  setHeaderOptions,
  Watch,
  type KubeConfig,
  type KubernetesObject,
  type V1ConfigMap,
  type V1Pod,
  type V1Secret,
} from '@kubernetes/client-node';
import Docker from 'dockerode';
import { AGENT_LABEL, CLUSTER_LABEL } from './containerConfig.ts';
import { KubeletServer } from './kubeletServer.ts';
import { PodEvents } from './podEvents.ts';
import { isNotFound } from './podVolumes.ts';
import { PodWorker } from './podWorker.ts';

export interface NodeAgentOptions {
  /** Admin kubeconfig of the test cluster (test/helpers/requireKube.ts). */
  kubeConfig: KubeConfig;
  docker?: Docker;
  /** Node name; a unique `wm-test-node-<random>` by default, so parallel test files never share a node. */
  name?: string;
  /** Extra Node labels (tests pin pods with a nodeSelector on `kubernetes.io/hostname` or on these). */
  labels?: Record<string, string>;
  /** Node capacity (also allocatable); defaults to 2 CPUs, 4Gi, 110 pods. */
  capacity?: { cpu?: string; memory?: string; pods?: string };
  /** Folder holding pki/ca.crt, pki/kubelet.crt, pki/kubelet.key (written by `.ci/kube up`); default $WM_KUBE_DIR or /tmp/wm-kube. */
  kubeDir?: string;
  /** Diagnostics; default: kept in `agent.events` and printed when WM_TEST_KUBE_AGENT_LOG=1. */
  log?: (message: string) => void;
}

/** The node's InternalIP: kube-apiserver reaches the agent's kubelet server there (--kubelet-preferred-address-types). */
const NODE_IP = '127.0.0.1';

/**
 * A test stand-in for the kubelet: registers a Node, runs the pods the scheduler binds to it as Docker containers,
 * reports their status, and serves the kubelet endpoints (logs, exec, port-forward) kube-apiserver proxies to.
 * Faithful to what a provider can observe through the API; see test/k8s/README.md for what it does not emulate.
 */
export class NodeAgent {
  readonly name: string;
  /** The apiserver URL of the agent's cluster: the cluster label of its containers. */
  readonly cluster: string;
  /** The agent's diagnostics (sync failures, probe kills), newest last. */
  readonly events: string[] = [];
  readonly #options: NodeAgentOptions;
  readonly #core: CoreV1Api;
  readonly #docker: Docker;
  readonly #workers = new Map<string, PodWorker>();
  readonly #events: PodEvents;
  readonly #informers: ListWatch<KubernetesObject>[] = [];
  #server: KubeletServer | undefined;
  #rootDir: string | undefined;
  #started = false;
  #stopped = false;

  constructor(options: NodeAgentOptions) {
    this.#options = options;
    this.name = options.name ?? `wm-test-node-${randomBytes(4).toString('hex')}`;
    this.cluster = options.kubeConfig.getCurrentCluster()?.server ?? '';
    this.#core = options.kubeConfig.makeApiClient(CoreV1Api);
    this.#docker = options.docker ?? new Docker();
    this.#events = new PodEvents(this.#core, this.name, (message) => this.#log(message));
  }

  /** Label selector value that pins a pod to this node: `nodeSelector: { 'kubernetes.io/hostname': agent.name }`. */
  get nodeSelector(): Record<string, string> {
    return { 'kubernetes.io/hostname': this.name };
  }

  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    const kubeDir = this.#options.kubeDir ?? process.env['WM_KUBE_DIR'] ?? '/tmp/wm-kube';
    const [key, cert, ca] = await Promise.all(['kubelet.key', 'kubelet.crt', 'ca.crt'].map((file) => readFile(path.join(kubeDir, 'pki', file))));
    this.#rootDir = await mkdtemp(path.join(os.tmpdir(), `${this.name}-`));
    this.#server = new KubeletServer(
      {
        docker: this.#docker,
        findContainer: (namespace, pod, container, previous) => this.#findContainer(namespace, pod, container, previous),
        podIP: (namespace, pod) => this.#worker(namespace, pod)?.podIP,
        log: (message) => this.#log(message),
      },
      { key: key ?? Buffer.alloc(0), cert: cert ?? Buffer.alloc(0), clientCa: ca ?? Buffer.alloc(0) },
    );
    const port = await this.#server.listen();
    await this.#removeOrphans();
    await this.#register(port);
    // Secrets and ConfigMaps first, so their initial listing does not race the pods' first volume setup.
    this.#watch<V1Secret>('/api/v1/secrets', () => this.#core.listSecretForAllNamespaces(), (secret) => this.#objectChanged('Secret', secret));
    this.#watch<V1ConfigMap>('/api/v1/configmaps', () => this.#core.listConfigMapForAllNamespaces(), (map) => this.#objectChanged('ConfigMap', map));
    const fieldSelector = `spec.nodeName=${this.name}`;
    this.#watch<V1Pod>('/api/v1/pods', () => this.#core.listPodForAllNamespaces({ fieldSelector }), (pod, change) => this.#podChanged(pod, change), fieldSelector);
  }

  /** Stops every container of this node, removes the pods still bound to it and the Node itself. Safe to call twice. */
  async stop(): Promise<void> {
    if (!this.#started || this.#stopped) return;
    this.#stopped = true;
    await Promise.all(this.#informers.map((informer) => informer.stop()));
    await Promise.all([...this.#workers.values()].map((worker) => worker.shutdown()));
    // A node that goes away takes its pods with it: nothing else would ever finish their deletion.
    const left = await this.#core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${this.name}` });
    for (const pod of left.items) {
      await this.#core
        .deleteNamespacedPod({ name: pod.metadata?.name ?? '', namespace: pod.metadata?.namespace ?? '', gracePeriodSeconds: 0 })
        .catch((error: unknown) => {
          if (!isNotFound(error)) throw error;
        });
    }
    await this.#core.deleteNode({ name: this.name }).catch((error: unknown) => {
      if (!isNotFound(error)) throw error;
    });
    await this.#server?.close();
    await this.#removeContainers((labels) => labels[AGENT_LABEL] === this.name);
    if (this.#rootDir !== undefined) await rm(this.#rootDir, { recursive: true, force: true });
  }

  async #register(port: number): Promise<void> {
    const capacity = { cpu: '2', memory: '4Gi', pods: '110', 'ephemeral-storage': '20Gi', ...this.#options.capacity };
    await this.#core.createNode({
      body: {
        metadata: {
          name: this.name,
          labels: {
            'kubernetes.io/hostname': this.name,
            'kubernetes.io/os': 'linux',
            'kubernetes.io/arch': os.arch() === 'arm64' ? 'arm64' : 'amd64',
            'beta.kubernetes.io/os': 'linux',
            'beta.kubernetes.io/arch': os.arch() === 'arm64' ? 'arm64' : 'amd64',
            ...this.#options.labels,
          },
        },
      },
    });
    const now = new Date();
    const condition = (type: string, status: string, reason: string, message: string): Record<string, unknown> => ({
      type,
      status,
      reason,
      message,
      lastHeartbeatTime: now,
      lastTransitionTime: now,
    });
    const version = await this.#docker.version();
    await this.#core.patchNodeStatus(
      {
        name: this.name,
        body: {
          status: {
            capacity,
            allocatable: capacity,
            conditions: [
              condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'),
              condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
              condition('PIDPressure', 'False', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'),
              condition('Ready', 'True', 'KubeletReady', 'kubelet is posting ready status'),
            ],
            addresses: [
              { type: 'InternalIP', address: NODE_IP },
              { type: 'Hostname', address: this.name },
            ],
            daemonEndpoints: { kubeletEndpoint: { Port: port } },
            nodeInfo: {
              machineID: '',
              systemUUID: '',
              bootID: '',
              kernelVersion: os.release(),
              osImage: 'worker-manager test node agent',
              containerRuntimeVersion: `docker://${version.Version}`,
              kubeletVersion: 'v1.20.2',
              kubeProxyVersion: 'v1.20.2',
              operatingSystem: 'linux',
              architecture: os.arch() === 'arm64' ? 'arm64' : 'amd64',
            },
          },
        },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    // Admission (TaintNodesByCondition) taints a new node not-ready; the node-lifecycle controller that would lift it is
    // off in the test cluster, so the "kubelet" does it once it reports Ready.
    await this.#core.patchNode({ name: this.name, body: { spec: { taints: null } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  }

  #watch<T extends KubernetesObject>(
    apiPath: string,
    list: () => Promise<{ items: T[]; metadata?: { resourceVersion?: string } }>,
    onChange: (object: T, change: 'add' | 'update' | 'delete') => void,
    fieldSelector?: string,
  ): void {
    const informer = new ListWatch<T>(apiPath, new Watch(this.#options.kubeConfig), list, false, undefined, fieldSelector);
    informer.on('add', (object) => onChange(object, 'add'));
    informer.on('update', (object) => onChange(object, 'update'));
    informer.on('delete', (object) => onChange(object, 'delete'));
    // ListWatch's stop() aborts only a watch that is already connected: one still connecting when the agent stops would
    // connect afterwards and stream forever (keeping the test process alive). So a start that ends after the stop stops
    // it again.
    const start = (): void => {
      informer.start().then(
        () => (this.#stopped ? informer.stop() : undefined),
        () => undefined,
      );
    };
    // ListWatch stops on an error (apiserver restart, dropped watch); relist and watch again, like a reflector.
    informer.on('error', (error) => {
      this.#log(`watch ${apiPath}: ${error instanceof Error ? error.message : String(error)}`);
      if (!this.#stopped) setTimeout(() => (this.#stopped ? undefined : start()), 1000);
    });
    this.#informers.push(informer as unknown as ListWatch<KubernetesObject>);
    start();
  }

  #podChanged(pod: V1Pod, change: 'add' | 'update' | 'delete'): void {
    const uid = pod.metadata?.uid;
    if (uid === undefined || this.#stopped) return;
    let worker = this.#workers.get(uid);
    if (change === 'delete') {
      worker?.removed();
      this.#workers.delete(uid);
      return;
    }
    if (worker === undefined) {
      worker = new PodWorker(
        {
          docker: this.#docker,
          core: this.#core,
          nodeName: this.name,
          cluster: this.cluster,
          hostIP: NODE_IP,
          rootDir: this.#rootDir ?? os.tmpdir(),
          events: this.#events,
          log: (m) => this.#log(m),
        },
        pod,
      );
      this.#workers.set(uid, worker);
    }
    worker.update(pod);
  }

  #objectChanged(kind: 'Secret' | 'ConfigMap', object: V1Secret | V1ConfigMap): void {
    const namespace = object.metadata?.namespace;
    for (const worker of this.#workers.values()) {
      if (worker.pod.metadata?.namespace === namespace && projects(worker.pod, kind, object.metadata?.name)) worker.refreshVolumes();
    }
  }

  #worker(namespace: string, name: string): PodWorker | undefined {
    for (const worker of this.#workers.values()) {
      const meta = worker.pod.metadata;
      if (meta?.namespace === namespace && meta.name === name && !worker.finished) return worker;
    }
    return undefined;
  }

  #findContainer(namespace: string, pod: string, container: string, previous: boolean): { containerId?: string; waiting?: string } | undefined {
    const worker = this.#worker(namespace, pod);
    if (worker === undefined) return undefined;
    const spec = [...(worker.pod.spec?.containers ?? []), ...(worker.pod.spec?.initContainers ?? [])].find((c) => c.name === container);
    if (spec === undefined) return { waiting: `container ${container} is not valid for pod ${pod}` };
    const containerId = worker.containerId(container, previous);
    if (containerId !== undefined) return { containerId };
    return {
      waiting: previous
        ? `previous terminated container "${container}" in pod "${pod}" not found`
        : `container "${container}" in pod "${pod}" is waiting to start: ${worker.waitingReason(container) ?? 'ContainerCreating'}`,
    };
  }

  /**
   * Containers of this cluster's agents whose Node no longer exists (a test process that was killed) are removed. Those
   * of another cluster are not this apiserver's to judge: their Nodes are not here, and their agents may be running.
   */
  async #removeOrphans(): Promise<void> {
    const containers = await this.#docker.listContainers({ all: true, filters: { label: [AGENT_LABEL, `${CLUSTER_LABEL}=${this.cluster}`] } });
    const nodes = new Set(containers.map((c) => c.Labels[AGENT_LABEL] ?? ''));
    const gone = new Set<string>();
    for (const node of nodes) {
      const exists = await this.#core.readNode({ name: node }).then(
        () => true,
        (error: unknown) => !isNotFound(error),
      );
      if (!exists) gone.add(node);
    }
    if (gone.size > 0) await this.#removeContainers((labels) => labels[CLUSTER_LABEL] === this.cluster && gone.has(labels[AGENT_LABEL] ?? ''));
  }

  async #removeContainers(match: (labels: Record<string, string>) => boolean): Promise<void> {
    const containers = await this.#docker.listContainers({ all: true, filters: { label: [AGENT_LABEL] } });
    await Promise.all(
      containers.filter((c) => match(c.Labels)).map((c) => this.#docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)),
    );
  }

  #log(message: string): void {
    const line = `${new Date().toISOString()} ${this.name}: ${message}`;
    this.events.push(line);
    if (this.events.length > 500) this.events.shift();
    if (this.#options.log !== undefined) this.#options.log(line);
    else if (process.env['WM_TEST_KUBE_AGENT_LOG'] === '1') console.error(line);
  }
}

/** Whether a pod mounts (as a volume) the given Secret or ConfigMap. */
function projects(pod: V1Pod, kind: 'Secret' | 'ConfigMap', name: string | undefined): boolean {
  const isSecret = kind === 'Secret';
  for (const volume of pod.spec?.volumes ?? []) {
    if (isSecret && volume.secret?.secretName === name) return true;
    if (!isSecret && volume.configMap?.name === name) return true;
    for (const source of volume.projected?.sources ?? []) {
      if (isSecret && source.secret?.name === name) return true;
      if (!isSecret && source.configMap?.name === name) return true;
    }
  }
  return false;
}
