/**
 * A test node (namespace and node agent, see startTestNode) in a process of its own, for measurements in which the
 * agent's work must not share an event loop with what is measured (a kubelet is another process). Prints one JSON line
 * `{ namespace, nodeName, nodeSelector }` once the node is Ready; stops it (pods, Node, namespace) and exits when its
 * stdin closes, so it never outlives its parent. argv: prefix; WM_KUBE_DIR: the cluster's folder.
 */
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { KUBE_DIR } from '../helpers/requireKube.ts';
import { startTestNode } from './testCluster.ts';

const kubeConfig = new KubeConfig();
kubeConfig.loadFromFile(path.join(KUBE_DIR, 'kubeconfig'));
const node = await startTestNode(kubeConfig, process.argv[2] ?? 'wm-node', { kubeDir: KUBE_DIR });
process.stdout.write(`${JSON.stringify({ namespace: node.namespace, nodeName: node.agent.name, nodeSelector: node.agent.nodeSelector })}\n`);
process.stdin.resume();
await new Promise((resolve) => process.stdin.once('close', resolve));
await node.close();
process.exit(0);
