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

/**
 * Worker state from `docker inspect`: created -> Creating; running with a health check still starting -> Creating;
 * running and unhealthy -> Failed{Unhealthy} (the plugin kills it); paused -> Paused; removing -> Terminating;
 * exited/dead -> Terminated{0} or Failed{OOMKilled | Unhealthy | ExitCode<n>}.
 */
export function stateFromInspect(s: InspectState): WorkerState {
  const health = s.Health?.Status;
  switch (s.Status) {
    case 'created':
      return { phase: 'Creating' };
    case 'running':
      if (health === 'starting') return { phase: 'Creating' };
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
      return { phase: 'Creating' };
    case 'running':
      if (row.Status.includes('(health: starting)')) return { phase: 'Creating' };
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
