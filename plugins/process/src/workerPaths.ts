import path from 'node:path';

/** Where the state of one worker lives; the folder is the only truth, any thread may read it. */
export interface WorkerPaths {
  dir: string;
  /** Spec (without secret values), pid and start time, owner labels: written once per (re)start. */
  meta: string;
  stdout: string;
  stderr: string;
  /** Written by the wrapper shell with the command's exit status, whether or not a plugin thread is alive. */
  exit: string;
  /** Present once termination (or a deadline stop, or a restart) was asked for. */
  terminating: string;
  /** Cache of the final state, written the first time it is derived. */
  final: string;
  /** The last state a watcher emitted events for. */
  reported: string;
  /** Which thread watches the worker (token), refreshed by mtime. */
  lease: string;
  logIndex: string;
  logPos: string;
  logLock: string;
  /** File secrets (mode 0700 folder, 0600 files); removed on terminate. */
  secrets: string;
  /** Root of the worker's working directory. */
  work: string;
}

/** The folder holding every worker folder of an instance. */
export function workersDir(stateDir: string): string {
  return path.join(stateDir, 'workers');
}

/** Where abandoned folders are moved (one rename, which only one thread wins) before they are removed. */
export function trashDir(stateDir: string): string {
  return path.join(stateDir, 'trash');
}

/**
 * Where a worker's folder is put together while it is created: it appears under `workers/` by a rename, with its
 * `meta.json` already in it, so no reader ever sees a worker folder without one. `creating/<id>` is also the claim:
 * of several creates of one id, the one whose mkdir succeeds goes on.
 */
export function creatingDir(stateDir: string): string {
  return path.join(stateDir, 'creating');
}

/** Paths of one worker. */
export function workerPaths(stateDir: string, workerId: string): WorkerPaths {
  return pathsIn(path.join(workersDir(stateDir), workerId));
}

/** The claim of a create of `workerId` (see {@link creatingDir}). */
export function claimDir(stateDir: string, workerId: string): string {
  return path.join(creatingDir(stateDir), workerId);
}

/**
 * Paths of a worker's folder while one create (`attempt`, a token of its own) puts it together inside its claim: a
 * create that took over an abandoned claim builds in a folder of its own, so the one it took over, should it wake up,
 * can neither write into nor publish the new one's.
 */
export function stagingPaths(stateDir: string, workerId: string, attempt: string): WorkerPaths {
  return pathsIn(path.join(claimDir(stateDir, workerId), attempt));
}

function pathsIn(dir: string): WorkerPaths {
  const at = (name: string): string => path.join(dir, name);
  return {
    dir,
    meta: at('meta.json'),
    stdout: at('stdout.log'),
    stderr: at('stderr.log'),
    exit: at('exit'),
    terminating: at('terminating.json'),
    final: at('final.json'),
    reported: at('reported.json'),
    lease: at('lease'),
    logIndex: at('logs.idx'),
    logPos: at('logs.pos.json'),
    logLock: at('logs.lock'),
    secrets: at('secrets'),
    work: at('work'),
  };
}
