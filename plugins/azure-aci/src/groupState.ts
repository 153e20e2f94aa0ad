import type { ContainerGroup } from '@azure/arm-containerinstance';
import type { WorkerState } from '@worker-manager/plugin-sdk';

const PULL_FAILURE = /pull|inaccessible|manifest unknown|not found in the registry/i;

/** Why a container that is not running yet waits, as a pending reason token. */
function pendingReason(group: ContainerGroup): string {
  const view = group.containers[0]?.instanceView;
  const last = view?.events?.at(-1)?.name;
  if (last === 'Pulling') return 'ImagePull';
  const detail = view?.currentState?.detailStatus;
  if (detail === 'ContainerCreating' || last === 'Pulled') return 'ContainerCreating';
  return 'Provisioning';
}

/**
 * The worker state of a container group read with its instance view. ARM's `provisioningState` says whether the
 * deployment went through (Pending/Creating while it runs, Failed when the asynchronous operation failed); the
 * container's `currentState` says what the process does (Waiting, Running, Terminated with its exit code); the group's
 * `instanceView.state` says `Stopped` when someone stopped it outside the host.
 */
export function stateOfGroup(group: ContainerGroup): WorkerState {
  const container = group.containers[0]?.instanceView;
  const current = container?.currentState;
  const provisioning = group.provisioningState;
  if (provisioning === 'Failed') {
    const events = container?.events ?? [];
    const pull = current?.detailStatus === 'ErrImagePull' || events.some((e) => e.type === 'Warning' && PULL_FAILURE.test(e.message ?? ''));
    return { phase: 'Failed', reason: pull ? 'ImagePullFailed' : 'ProvisioningFailed' };
  }
  if (provisioning === 'Canceled') return { phase: 'Failed', reason: 'ProvisioningCanceled' };
  if (provisioning === 'Deleting') return { phase: 'Terminating' };
  if (group.instanceView?.state === 'Stopped') {
    // Stopped behind the host's back (az container stop): the process was killed and the group holds no compute.
    return current?.exitCode === undefined ? { phase: 'Failed', reason: 'Stopped' } : { phase: 'Failed', reason: 'Stopped', exitCode: current.exitCode };
  }
  if (current?.state === 'Running') return { phase: 'Running' };
  if (current?.state === 'Terminated') {
    const exitCode = current.exitCode;
    if (exitCode === 0) return { phase: 'Terminated', exitCode };
    if (current.detailStatus === 'OOMKilled') return exitCode === undefined ? { phase: 'Failed', reason: 'OOMKilled' } : { phase: 'Failed', reason: 'OOMKilled', exitCode };
    return exitCode === undefined ? { phase: 'Failed', reason: 'ProcessLost' } : { phase: 'Failed', reason: `ExitCode${exitCode}`, exitCode };
  }
  if (provisioning === undefined || provisioning === 'Pending' || provisioning === 'Creating' || provisioning === 'Accepted' || provisioning === 'Succeeded' || provisioning === 'Updating') {
    return { phase: 'Starting', pendingReason: pendingReason(group) };
  }
  return { phase: 'Unknown' };
}
