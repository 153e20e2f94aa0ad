import type { Container, Task } from '@aws-sdk/client-ecs';
import type { WorkerState } from '@worker-manager/plugin-sdk';

/**
 * Prefix of the `reason` the plugin gives StopTask. ECS copies it into `stoppedReason`, which is how a task the plugin
 * stopped (Terminated) is told from one somebody else stopped (Failed: StoppedExternally).
 */
export const STOP_REASON_PREFIX = 'worker-manager: terminateWorker';

/** The worker's container: the one named in the config, else the first. */
export function workerContainer(task: Task, containerName: string): Container | undefined {
  return task.containers?.find((c) => c.name === containerName) ?? task.containers?.[0];
}

/**
 * Failed reason of a task that did not start, from the error ECS puts at the start of `stoppedReason` (or of the
 * container's `reason`): `CannotPullContainerError` -> ImagePullFailed, anything else -> StartFailed.
 */
function startFailure(task: Task, container: Container | undefined): string {
  const text = `${task.stoppedReason ?? ''} ${container?.reason ?? ''}`;
  if (/CannotPullContainerError|pull image manifest|ImagePull/i.test(text)) return 'ImagePullFailed';
  return 'StartFailed';
}

/** The end of an essential container: OOM (ECS says `OutOfMemoryError` in the container reason), then its exit code. */
function exitedState(task: Task, container: Container | undefined): WorkerState {
  const exitCode = container?.exitCode;
  if (/OutOfMemoryError/i.test(container?.reason ?? '')) return exitCode === undefined ? { phase: 'Failed', reason: 'OOMKilled' } : { phase: 'Failed', reason: 'OOMKilled', exitCode };
  if (exitCode === 0) return { phase: 'Terminated', exitCode: 0 };
  if (exitCode !== undefined) return { phase: 'Failed', reason: `ExitCode${exitCode}`, exitCode };
  // Stopped without an exit code: the container never ran (a start error in its reason), or ECS lost it.
  return container?.reason !== undefined ? { phase: 'Failed', reason: startFailure(task, container) } : { phase: 'Failed', reason: 'ProcessLost' };
}

/** Final state of a STOPPED task, from its stopCode. */
function stoppedState(task: Task, container: Container | undefined): WorkerState {
  const exitCode = container?.exitCode;
  switch (task.stopCode) {
    case 'TaskFailedToStart':
      return { phase: 'Failed', reason: startFailure(task, container) };
    case 'EssentialContainerExited':
      return exitedState(task, container);
    case 'UserInitiated':
      if ((task.stoppedReason ?? '').startsWith(STOP_REASON_PREFIX)) return exitCode === undefined ? { phase: 'Terminated' } : { phase: 'Terminated', exitCode };
      return exitCode === undefined ? { phase: 'Failed', reason: 'StoppedExternally' } : { phase: 'Failed', reason: 'StoppedExternally', exitCode };
    case 'SpotInterruption':
    case 'TerminationNotice':
    case 'ServiceSchedulerInitiated':
    case 'InfrastructureHealth':
      // ECS stopped it for its own reasons; the stopCode is already an UpperCamelCase token.
      return exitCode === undefined ? { phase: 'Failed', reason: task.stopCode } : { phase: 'Failed', reason: task.stopCode, exitCode };
    default:
      return exitedState(task, container);
  }
}

/**
 * Worker state of an ECS task (DescribeTasks): PROVISIONING -> Starting{Provisioning}; PENDING -> Starting{ImagePull}
 * while the image is pulled, else Starting{Pending}; ACTIVATING -> Starting{Activating}; RUNNING -> Running (Terminating
 * once a stop was asked); DEACTIVATING, STOPPING, DEPROVISIONING -> Terminating; STOPPED -> Terminated or Failed from the
 * stopCode and the container's exit code.
 */
export function stateOfTask(task: Task, containerName: string): WorkerState {
  const container = workerContainer(task, containerName);
  switch (task.lastStatus) {
    case 'PROVISIONING':
      return { phase: 'Starting', pendingReason: 'Provisioning' };
    case 'PENDING':
      return { phase: 'Starting', pendingReason: task.pullStartedAt !== undefined && task.pullStoppedAt === undefined ? 'ImagePull' : 'Pending' };
    case 'ACTIVATING':
      return { phase: 'Starting', pendingReason: 'Activating' };
    case 'RUNNING':
      return task.desiredStatus === 'STOPPED' ? { phase: 'Terminating' } : { phase: 'Running' };
    case 'DEACTIVATING':
    case 'STOPPING':
    case 'DEPROVISIONING':
      return { phase: 'Terminating' };
    case 'STOPPED':
      return stoppedState(task, container);
    default:
      return { phase: 'Unknown' };
  }
}

/** True for STOPPED tasks. */
export const isStopped = (task: Task): boolean => task.lastStatus === 'STOPPED';
