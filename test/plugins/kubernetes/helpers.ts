import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import type { RuntimeSpec } from '@worker-manager/plugin-sdk';
import { IMAGE, startTestNode, type TestNode } from '../../k8s/testCluster.ts';
import { KUBE_DIR } from '../../helpers/requireKube.ts';

export { IMAGE };

/** The admin kubeconfig `.ci/kube up` wrote: what an instance's `kubeconfig` points at. */
export const KUBECONFIG_PATH = path.join(KUBE_DIR, 'kubeconfig');

/** A test file's namespace and node agent, and the instance config that pins the provider's pods to that node. */
export async function startKubeWorld(kubeConfig: KubeConfig, prefix: string): Promise<{ node: TestNode; config: Record<string, unknown> }> {
  const node = await startTestNode(kubeConfig, prefix);
  return {
    node,
    config: { kubeconfig: KUBECONFIG_PATH, namespace: node.namespace, nodeSelector: node.agent.nodeSelector, imagePullPolicy: 'Never', defaultGracePeriodMs: 2_000 },
  };
}

/**
 * A long-running busybox worker. PID 1 of a container ignores signals it has no handler for, and Kubernetes injects no
 * init process, so the script traps TERM and HUP itself (as a real worker image's entrypoint must).
 */
export function trapping(script: string): RuntimeSpec {
  return { image: IMAGE, command: ['sh', '-c', `trap 'exit 143' TERM; trap 'exit 129' HUP; ${script} & wait`] };
}

/** A temporary folder for a test's files. */
export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), prefix));
}
