import { randomBytes } from 'node:crypto';
import { CoreV1Api, type KubeConfig, type V1Container, type V1ContainerStatus, type V1Pod, type V1PodSpec } from '@kubernetes/client-node';
import Docker from 'dockerode';
import { waitFor } from '../helpers/waitFor.ts';
import { execInContainer } from './dockerExec.ts';
import { NodeAgent } from './nodeAgent.ts';
import { isNotFound } from './podVolumes.ts';

export const IMAGE = 'local/busybox:latest';

/** Budget for a pod to reach a state: covers container start, status patch and watch delivery on a loaded machine. */
export const POD_WAIT_MS = 90_000;

/** One test file's world: its own namespace and its own node agent, so parallel files never see each other's pods. */
export interface TestNode {
  core: CoreV1Api;
  docker: Docker;
  agent: NodeAgent;
  namespace: string;
  close(): Promise<void>;
}

/**
 * A namespace `<prefix>-<random>` and a node agent. `kubeDir` is the folder of the cluster's PKI (the agent's serving
 * certificate): another cluster's than the shared one's of `.ci/kube up` (WM_KUBE_DIR, default /tmp/wm-kube).
 */
export async function startTestNode(kubeConfig: KubeConfig, prefix: string, options: { kubeDir?: string } = {}): Promise<TestNode> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const docker = new Docker();
  const namespace = `${prefix}-${randomBytes(3).toString('hex')}`;
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  // Admission (ServiceAccount, 1.20) refuses pods until the controller-manager has made the namespace's `default`
  // ServiceAccount and its token Secret.
  await waitFor(
    () => core.readNamespacedServiceAccount({ name: 'default', namespace }).then((sa) => (sa.secrets ?? []).length > 0, () => false),
    `the default ServiceAccount of ${namespace} with its token`,
    60_000,
    200,
  );
  const agent = new NodeAgent({ kubeConfig, docker, kubeDir: options.kubeDir });
  await agent.start();
  return {
    core,
    docker,
    agent,
    namespace,
    async close() {
      // The agent first (it kills its containers and removes the pods bound to it), then the empty namespace.
      await agent.stop();
      await core.deleteNamespace({ name: namespace }).catch((error: unknown) => {
        if (!isNotFound(error)) throw error;
      });
    },
  };
}

/** A busybox container that never pulls (no registry is reachable). */
export function busybox(name: string, script: string, extra: Partial<V1Container> = {}): V1Container {
  return { name, image: IMAGE, imagePullPolicy: 'Never', command: ['sh', '-c', script], ...extra };
}

/** A pod pinned to the test's own node by nodeSelector; a short grace period keeps deletions quick (sh ignores SIGTERM as PID 1). */
export function podOn(node: TestNode, name: string, containers: V1Container[], spec: Partial<V1PodSpec> = {}): V1Pod {
  return {
    metadata: { name, namespace: node.namespace },
    spec: { nodeSelector: node.agent.nodeSelector, terminationGracePeriodSeconds: 2, restartPolicy: 'Never', containers, ...spec },
  };
}

export async function createPod(node: TestNode, pod: V1Pod): Promise<V1Pod> {
  return node.core.createNamespacedPod({ namespace: node.namespace, body: pod });
}

/** Waits until the pod satisfies `ready` and returns it; the failure message shows the pod's last status. */
export async function waitForPod(node: TestNode, name: string, ready: (pod: V1Pod) => boolean, what: string, timeoutMs = POD_WAIT_MS): Promise<V1Pod> {
  let last: V1Pod | undefined;
  return waitFor(
    async () => {
      last = await node.core.readNamespacedPod({ name, namespace: node.namespace });
      return ready(last) ? last : undefined;
    },
    () => `pod ${name}: ${what} (last status: ${JSON.stringify(last?.status)}; agent: ${node.agent.events.slice(-5).join(' | ')})`,
    timeoutMs,
    250,
  );
}

/** Waits until the pod is gone from the API. */
export async function waitForPodGone(node: TestNode, name: string, timeoutMs = POD_WAIT_MS): Promise<void> {
  await waitFor(
    () => node.core.readNamespacedPod({ name, namespace: node.namespace }).then(() => false, (error: unknown) => isNotFound(error)),
    `pod ${name} to be gone`,
    timeoutMs,
    250,
  );
}

export function containerStatus(pod: V1Pod, name: string): V1ContainerStatus | undefined {
  return pod.status?.containerStatuses?.find((s) => s.name === name);
}

export function condition(pod: V1Pod, type: string): string | undefined {
  return pod.status?.conditions?.find((c) => c.type === type)?.status;
}

export function isRunningAndReady(pod: V1Pod): boolean {
  return pod.status?.phase === 'Running' && condition(pod, 'Ready') === 'True';
}

/** Runs a command in a container through Docker (not through the apiserver) and returns its output. */
export async function dockerExec(docker: Docker, containerId: string, command: string[]): Promise<string> {
  const result = await execInContainer(docker, containerId, command, 30_000);
  return result.output;
}

export function dockerId(containerID: string | undefined): string {
  if (containerID === undefined || !containerID.startsWith('docker://')) throw new Error(`not a docker container ID: ${String(containerID)}`);
  return containerID.slice('docker://'.length);
}

/** Waits until the kubelet-sourced events of a pod include every `reason` given; returns them as "type reason: message". */
export async function waitForEvents(node: TestNode, pod: string, reasons: string[]): Promise<string[]> {
  let seen: string[] = [];
  await waitFor(
    async () => {
      const list = await node.core.listNamespacedEvent({ namespace: node.namespace, fieldSelector: `involvedObject.name=${pod}` });
      const kubelet = list.items.filter((e) => e.source?.component === 'kubelet' && e.source.host === node.agent.name);
      seen = kubelet.map((e) => `${e.type ?? ''} ${e.reason ?? ''}: ${e.message ?? ''}`);
      return reasons.every((reason) => kubelet.some((e) => e.reason === reason));
    },
    () => `events ${reasons.join(', ')} of pod ${pod} (seen: ${seen.join(' | ')})`,
    30_000,
    250,
  );
  return seen;
}
