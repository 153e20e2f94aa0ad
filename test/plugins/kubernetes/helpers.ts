import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { NetworkingV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { RuntimeSpec } from '@worker-manager/plugin-sdk';
import { IMAGE, startTestNode, type TestNode } from '../../k8s/testCluster.ts';
import { KUBE_DIR } from '../../helpers/requireKube.ts';
import { waitFor } from '../../helpers/waitFor.ts';

export { IMAGE };

/** What the plugin labels every object it makes with (the default `labelPrefix`): its own, whichever host and instance. */
export const OURS = 'worker-manager/host';

/** A test file's namespace and node agent, and the instance config that pins the provider's pods to that node. */
export interface KubeWorld {
  node: TestNode;
  config: Record<string, unknown>;
  /**
   * Checks that the namespace (and `namespaces`, others the file used) holds no pod, Secret or NetworkPolicy of the
   * plugin's, then stops the agent and deletes the namespace, whatever the check found. Call it in the file's last
   * after(), once its harnesses and hosts are closed: every test must have terminated what it created.
   */
  close(...namespaces: string[]): Promise<void>;
}

/** `kubeDir`: the folder of another cluster's kubeconfig and PKI than the shared one of `.ci/kube up`. */
export async function startKubeWorld(kubeConfig: KubeConfig, prefix: string, options: { kubeDir?: string } = {}): Promise<KubeWorld> {
  const node = await startTestNode(kubeConfig, prefix, options);
  const networking = kubeConfig.makeApiClient(NetworkingV1Api);
  return {
    node,
    config: {
      kubeconfig: path.join(options.kubeDir ?? KUBE_DIR, 'kubeconfig'),
      namespace: node.namespace,
      nodeSelector: node.agent.nodeSelector,
      imagePullPolicy: 'Never',
      defaultGracePeriodMs: 2_000,
    },
    async close(...namespaces) {
      let leftovers: unknown;
      try {
        await nothingLeft(node, networking, [node.namespace, ...namespaces]);
      } catch (error) {
        leftovers = error;
      }
      await node.close();
      if (leftovers !== undefined) throw leftovers;
    },
  };
}

/** Waits until the namespaces hold no object of the plugin's (a deletion in progress may still show); fails naming them. */
async function nothingLeft(node: TestNode, networking: NetworkingV1Api, namespaces: string[]): Promise<void> {
  let left: string[] = [];
  await waitFor(
    async () => {
      left = [];
      for (const namespace of namespaces) {
        const [pods, secrets, policies] = await Promise.all([
          node.core.listNamespacedPod({ namespace, labelSelector: OURS }),
          node.core.listNamespacedSecret({ namespace, labelSelector: OURS }),
          networking.listNamespacedNetworkPolicy({ namespace, labelSelector: OURS }),
        ]);
        for (const [kind, list] of [['pod', pods.items], ['secret', secrets.items], ['networkpolicy', policies.items]] as const) {
          left.push(...list.map((o) => `${kind} ${namespace}/${o.metadata?.name ?? ''}`));
        }
      }
      return left.length === 0;
    },
    () => `no pod, Secret or NetworkPolicy labelled ${OURS} left at the end of the file (left: ${left.join(', ')})`,
    30_000,
    500,
  );
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
