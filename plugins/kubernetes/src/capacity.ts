import type { CoreV1Api, V1Pod } from '@kubernetes/client-node';
import type { ResourceAmounts } from '@worker-manager/plugin-sdk';
import type { ResolvedConfig } from './config.ts';
import { mapKubeError } from './kubeErrors.ts';
import { toCount, toMillicores, toMiB } from './quantity.ts';

const zero = (): ResourceAmounts => ({ cpuMillicores: 0, memoryMiB: 0, gpu: 0, storageMiB: 0 });

function add(into: ResourceAmounts, q: Record<string, string> | undefined, gpuName: string): void {
  into.cpuMillicores += toMillicores(q?.['cpu']);
  into.memoryMiB += toMiB(q?.['memory']);
  into.gpu += toCount(q?.[gpuName]);
  into.storageMiB += toMiB(q?.['ephemeral-storage']);
}

/** The scheduler's view of a pod's request: the sum over containers, or the largest init container if larger. */
function podRequests(pod: V1Pod, gpuName: string): ResourceAmounts {
  const sum = zero();
  for (const c of pod.spec?.containers ?? []) add(sum, c.resources?.requests, gpuName);
  for (const c of pod.spec?.initContainers ?? []) {
    const one = zero();
    add(one, c.resources?.requests, gpuName);
    for (const k of Object.keys(sum) as Array<keyof ResourceAmounts>) sum[k] = Math.max(sum[k], one[k]);
  }
  return sum;
}

/**
 * Capacity as the scheduler counts it: the allocatable of the schedulable nodes the instance's nodeSelector picks,
 * minus the requests of every pod bound to them (all namespaces) that has not ended.
 */
export async function readCapacity(core: CoreV1Api, config: ResolvedConfig): Promise<{ total: ResourceAmounts; used: ResourceAmounts; available: ResourceAmounts }> {
  const labelSelector = Object.entries(config.nodeSelector).map(([k, v]) => `${k}=${v}`).join(',');
  let nodes;
  let pods;
  try {
    nodes = (await core.listNode(labelSelector === '' ? {} : { labelSelector })).items.filter((n) => n.spec?.unschedulable !== true);
    pods = (await core.listPodForAllNamespaces({ fieldSelector: 'status.phase!=Succeeded,status.phase!=Failed' })).items;
  } catch (error) {
    throw mapKubeError(error, 'getCapacity', {});
  }
  const names = new Set(nodes.map((n) => n.metadata?.name));
  const total = zero();
  for (const n of nodes) add(total, n.status?.allocatable, config.gpuResourceName);
  const used = zero();
  for (const p of pods) {
    if (p.spec?.nodeName === undefined || !names.has(p.spec.nodeName)) continue;
    const r = podRequests(p, config.gpuResourceName);
    for (const k of Object.keys(used) as Array<keyof ResourceAmounts>) used[k] += r[k];
  }
  const available = zero();
  for (const k of Object.keys(available) as Array<keyof ResourceAmounts>) available[k] = Math.max(0, total[k] - used[k]);
  return { total, used, available };
}
