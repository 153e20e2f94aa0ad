import type { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import type { WorkerState } from '@worker-manager/plugin-sdk';
import { CONTAINER, type Keys } from './names.ts';

/** Container waiting reasons that say why a pod does not run yet; they become the pending reason as they are. */
const WAITING_REASONS = new Set(['ErrImagePull', 'ImagePullBackOff', 'ErrImageNeverPull', 'InvalidImageName', 'CreateContainerConfigError', 'CreateContainerError', 'ContainerCreating', 'PodInitializing']);

const isReasonWord = (s: string | undefined): s is string => s !== undefined && /^[A-Z][A-Za-z0-9]{0,63}$/.test(s);

function status(pod: V1Pod): V1ContainerStatus | undefined {
  return pod.status?.containerStatuses?.find((s) => s.name === CONTAINER);
}

/** Why a Pending pod does not run: unscheduled (the scheduler's reason), a container waiting reason, or ContainerCreating. */
export function pendingReason(pod: V1Pod): string {
  const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
  if (scheduled?.status === 'False') return isReasonWord(scheduled.reason) ? scheduled.reason : 'Unschedulable';
  if (pod.spec?.nodeName === undefined || pod.spec.nodeName === '') return 'Scheduling';
  const waiting = status(pod)?.state?.waiting?.reason;
  if (waiting !== undefined && (WAITING_REASONS.has(waiting) || isReasonWord(waiting))) return waiting;
  return 'ContainerCreating';
}

/** Exit code of the worker's container, when it has ended. */
export function exitCodeOf(pod: V1Pod): number | undefined {
  return status(pod)?.state?.terminated?.exitCode;
}

/**
 * The worker state of a pod. Order matters: a final state the plugin recorded (pending timeout, deadline) wins, then an
 * end caused by a deletion the plugin did not ask for (Lost), then the pod's own final reasons (Evicted, DeadlineExceeded), then the container's end (OOMKilled, exit code), then a
 * deletion in progress, then Pending with its reason.
 */
export function stateOfPod(pod: V1Pod, keys: Keys): WorkerState {
  const exitCode = exitCodeOf(pod);
  const withExit = exitCode === undefined ? {} : { exitCode };
  const failure = pod.metadata?.annotations?.[keys.failure];
  if (failure !== undefined) return { phase: 'Failed', reason: failure, ...withExit };
  const terminatedAt = status(pod)?.state?.terminated?.finishedAt;
  const deletion = pod.metadata?.deletionTimestamp;
  if (deletion !== undefined && deletion !== null && pod.metadata?.annotations?.[keys.stop] === undefined && terminatedAt !== undefined) {
    // Ended by a deletion the plugin did not ask for (kubectl, its namespace deleted): the worker was lost, whatever
    // exit code the SIGTERM gave. A worker that had ended before the deletion keeps its own end.
    const requested = new Date(deletion).getTime() - (pod.metadata?.deletionGracePeriodSeconds ?? 0) * 1_000;
    // finishedAt has whole seconds: a second of slack.
    if (new Date(terminatedAt).getTime() >= requested - 1_000) return { phase: 'Failed', reason: 'Lost', ...withExit };
  }
  const phase = pod.status?.phase;
  const podReason = pod.status?.reason;
  if (podReason === 'Evicted' || podReason === 'DeadlineExceeded') return { phase: 'Failed', reason: podReason, ...withExit };
  const terminated = status(pod)?.state?.terminated;
  if (phase === 'Succeeded') return { phase: 'Terminated', exitCode: exitCode ?? 0 };
  if (phase === 'Failed') {
    if (terminated?.reason === 'OOMKilled') return { phase: 'Failed', reason: 'OOMKilled', ...withExit };
    if (exitCode !== undefined) return { phase: 'Failed', reason: `ExitCode${exitCode}`, exitCode };
    return { phase: 'Failed', reason: isReasonWord(podReason) ? podReason : 'PodFailed' };
  }
  if (pod.metadata?.deletionTimestamp !== undefined && pod.metadata.deletionTimestamp !== null) return { phase: 'Terminating' };
  if (phase === 'Running') {
    const s = status(pod);
    if (s?.state?.running !== undefined) {
      // With a health check, Running means ready: the readiness probe is the worker's health check.
      const hasProbe = pod.spec?.containers.find((c) => c.name === CONTAINER)?.readinessProbe !== undefined;
      return hasProbe && s.ready !== true ? { phase: 'Starting', pendingReason: 'HealthCheck' } : { phase: 'Running' };
    }
    if (s?.state?.terminated !== undefined) return { phase: 'Terminating' };
    return { phase: 'Starting', pendingReason: pendingReason(pod) };
  }
  if (phase === 'Pending' || phase === undefined) return { phase: 'Starting', pendingReason: pendingReason(pod) };
  return { phase: 'Unknown' };
}
