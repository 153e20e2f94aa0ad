import type Docker from 'dockerode';
import type { WorkerState } from '@worker-manager/plugin-sdk';

/** The parts of `docker inspect`'s State the plugin reads. */
export interface InspectState {
  Status: string;
  Running?: boolean;
  Paused?: boolean;
  OOMKilled?: boolean;
  ExitCode?: number;
  Health?: { Status?: string };
}

/** A final state from how the container ended: OOM kill and failed health checks win over the exit code. */
export function exitedState(exitCode: number, oomKilled: boolean, health: string | undefined): WorkerState {
  if (oomKilled) return { phase: 'Failed', reason: 'OOMKilled', exitCode };
  if (health === 'unhealthy') return { phase: 'Failed', reason: 'Unhealthy', exitCode };
  if (exitCode === 0) return { phase: 'Terminated', exitCode: 0 };
  return { phase: 'Failed', reason: `ExitCode${exitCode}`, exitCode };
}

/** A container the engine accepted that has not started yet. */
const CONTAINER_CREATING: WorkerState = { phase: 'Starting', pendingReason: 'ContainerCreating' };
/** A running container whose health check has not passed yet. */
export const HEALTH_CHECK_PENDING: WorkerState = { phase: 'Starting', pendingReason: 'HealthCheck' };

/**
 * Worker state from `docker inspect`: created -> Starting{ContainerCreating}; running with a health check still
 * starting -> Starting{HealthCheck}; running and unhealthy -> Failed{Unhealthy} (the plugin kills it); paused ->
 * Paused; restarting -> Creating; removing -> Terminating; exited/dead -> Terminated{0} or
 * Failed{OOMKilled | Unhealthy | ExitCode<n>}.
 */
export function stateFromInspect(s: InspectState): WorkerState {
  const health = s.Health?.Status;
  switch (s.Status) {
    case 'created':
      return { ...CONTAINER_CREATING };
    case 'running':
      if (health === 'starting') return { ...HEALTH_CHECK_PENDING };
      if (health === 'unhealthy') return { phase: 'Failed', reason: 'Unhealthy' };
      return { phase: 'Running' };
    case 'restarting':
      return { phase: 'Creating' };
    case 'paused':
      return { phase: 'Paused' };
    case 'removing':
      return { phase: 'Terminating' };
    case 'exited':
    case 'dead':
      return exitedState(s.ExitCode ?? -1, s.OOMKilled === true, health);
    default:
      return { phase: 'Unknown' };
  }
}

/**
 * State from a `docker ps` row, for the rows that need no inspect: running and paused containers (health is in the
 * Status text, e.g. "Up 3 seconds (health: starting)"). Returns undefined for ended containers, whose exit code and
 * OOM flag only inspect gives.
 */
export function stateFromListRow(row: Docker.ContainerInfo): WorkerState | undefined {
  switch (row.State) {
    case 'created':
      return { ...CONTAINER_CREATING };
    case 'running':
      if (row.Status.includes('(health: starting)')) return { ...HEALTH_CHECK_PENDING };
      if (row.Status.includes('(unhealthy)')) return { phase: 'Failed', reason: 'Unhealthy' };
      return { phase: 'Running' };
    case 'paused':
      return { phase: 'Paused' };
    case 'restarting':
      return { phase: 'Creating' };
    case 'removing':
      return { phase: 'Terminating' };
    default:
      return undefined;
  }
}

/** How long after a container's exit an exit 137 without the OOM flag is still ambiguous. */
const OOM_FLAG_LAG_MS = 2_000;

/** The inspect fields {@link settleOomFlag} reads. */
interface OomInspect {
  State: { Status: string; ExitCode?: number; OOMKilled?: boolean; FinishedAt?: string };
  HostConfig?: { Memory?: number };
}

/**
 * dockerd learns of an OOM kill from containerd's OOM event, which can arrive after the exit event: for a moment a
 * memory-limited container the kernel killed reads as exit 137 without `OOMKilled`, and the worker would be reported
 * as killed by a signal. While an inspect is in that window, inspect again (briefly) until the flag is set or the
 * window has passed.
 */
export async function settleOomFlag<T extends OomInspect>(info: T, inspect: () => Promise<T>): Promise<T> {
  let current = info;
  for (let attempt = 0; attempt < 20 && oomFlagMayLag(current); attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    current = await inspect();
  }
  return current;
}

function oomFlagMayLag(info: OomInspect): boolean {
  const s = info.State;
  if (s.Status !== 'exited' || s.ExitCode !== 137 || s.OOMKilled === true || (info.HostConfig?.Memory ?? 0) <= 0) return false;
  const finished = Date.parse(s.FinishedAt ?? '');
  return Number.isFinite(finished) && Date.now() - finished < OOM_FLAG_LAG_MS;
}
