import { setTimeout as sleep } from 'node:timers/promises';
import { groupMembers, readEnviron } from './procfs.ts';
import { readExitStatus, wrapperAlive } from './observeWorker.ts';
import type { WorkerMeta } from './WorkerMeta.ts';
import type { WorkerPaths } from './workerPaths.ts';

/** Sends a signal to the worker's process group; false when the group no longer exists. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw error;
  }
}

/**
 * SIGKILLs what is left of a worker's process group. While the wrapper (the group leader, checked by pid and start
 * time) lives, the group is the worker's. Once it is gone, its pid may have been handed to an unrelated process that
 * leads a group of its own (pids wrap quickly on a busy machine), so only members started with this worker's
 * `WM_WORKER_ID` are killed, one by one. Regression: terminating a long-finished worker sent SIGKILL to a reused group
 * id and took down an unrelated daemon. False when nothing of the worker was left.
 */
export function killWorkerGroup(meta: WorkerMeta): boolean {
  if (wrapperAlive(meta)) return signalGroup(meta.pid, 'SIGKILL');
  if (!groupExists(meta.pid)) return false;
  const own = groupMembers(meta.pid).filter((pid) => readEnviron(pid)?.['WM_WORKER_ID'] === meta.workerId);
  for (const pid of own) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  return own.length > 0;
}

/** Polls until `done()` or the time is up; returns `done()`. */
export async function waitUntil(done: () => boolean, timeoutMs: number, everyMs = 20): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() >= deadline) return false;
    await sleep(everyMs);
  }
  return true;
}

const ended = (paths: WorkerPaths, meta: WorkerMeta) => (): boolean => readExitStatus(paths) !== undefined || !wrapperAlive(meta);

/**
 * True once the process group has no live member. Signal 0 answers for the group in one call; only while it still
 * finds a member (which may be a zombie: a wrapper whose spawning thread is gone is never reaped) does this scan
 * `/proc`, which costs as much as there are processes on the machine.
 */
function groupGone(pgid: number): boolean {
  return !groupExists(pgid) || groupMembers(pgid).length === 0;
}

/** True while any process (zombies included) is in the group. */
function groupExists(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/**
 * Stops a worker's processes: SIGTERM to the group (and SIGCONT, so a paused worker can act on it), then after the
 * grace period SIGKILL to every member but the wrapper, so the wrapper still records the status; then SIGKILL to the
 * whole group, which also removes leftovers the command started in the background, and waits until they are gone.
 */
export async function stopWorker(paths: WorkerPaths, meta: WorkerMeta, gracePeriodMs: number): Promise<void> {
  const done = ended(paths, meta);
  if (!done()) {
    signalGroup(meta.pid, 'SIGTERM');
    signalGroup(meta.pid, 'SIGCONT');
    if (!(await waitUntil(done, gracePeriodMs))) {
      for (const pid of groupMembers(meta.pid)) {
        if (pid === meta.pid) continue;
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      if (!(await waitUntil(done, 2_000))) {
        killWorkerGroup(meta);
        await waitUntil(() => !wrapperAlive(meta), 2_000);
      }
    }
  }
  if (killWorkerGroup(meta)) {
    // Killed members need a moment to go: ask the cheap way first, and scan only for what outlives that.
    if (!(await waitUntil(() => !groupExists(meta.pid), 200, 5))) await waitUntil(() => groupGone(meta.pid), 800);
  }
}
