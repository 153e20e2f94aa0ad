import type { Failure } from '@aws-sdk/client-ecs';
import { WorkerManagerError } from '@worker-manager/plugin-sdk';

/**
 * The error for a RunTask that started no task and answered `failures[]` instead (HTTP 200). ECS's reasons
 * (`RESOURCE:MEMORY`, `AGENT`, `ATTRIBUTE` ...) say whether waiting may help: a full cluster frees up, a disconnected
 * agent reconnects, a placement constraint nobody meets stays unmet.
 */
export function runTaskFailure(workerId: string, failures: readonly Failure[]): WorkerManagerError {
  const first = failures[0];
  const reason = first?.reason ?? 'unknown';
  const details = { workerId, operation: 'ecs:RunTask', failures: failures.map((f) => ({ reason: f.reason ?? 'unknown', ...(f.detail === undefined ? {} : { detail: f.detail.slice(0, 400) }) })) };
  const detail = first?.detail === undefined ? '' : `: ${first.detail.slice(0, 200)}`;
  if (reason.startsWith('RESOURCE:')) {
    const resource = reason.slice('RESOURCE:'.length).toLowerCase();
    return new WorkerManagerError('WM_ERR_RESOURCE_EXHAUSTED', `ECS could not place worker '${workerId}': no container instance has enough ${resource} (${reason}${detail})`, { details });
  }
  if (/capacity is unavailable/i.test(reason)) {
    return new WorkerManagerError('WM_ERR_RESOURCE_EXHAUSTED', `ECS could not place worker '${workerId}': Fargate capacity is unavailable (${reason})`, { details });
  }
  if (reason === 'AGENT') {
    return new WorkerManagerError('WM_ERR_NETWORK', `ECS could not place worker '${workerId}': the container agent of the chosen instance is disconnected (AGENT${detail})`, { details });
  }
  if (reason === 'ATTRIBUTE' || reason === 'MISSING' || reason === 'INACTIVE') {
    return new WorkerManagerError('WM_ERR_CONFIGURATION', `ECS could not place worker '${workerId}' (${reason}${detail}): check the cluster, its instances and the task definition's requirements`, { details });
  }
  return new WorkerManagerError('WM_ERR_PROVIDER_SPECIFIC', `ECS started no task for worker '${workerId}' (${reason}${detail})`, { details });
}
