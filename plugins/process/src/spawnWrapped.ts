import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { WorkerManagerError } from '@worker-manager/plugin-sdk';
import { setTimeout as sleep } from 'node:timers/promises';
import { constants } from 'node:os';
import { catchesSignal, childrenOf, isProcessAlive, readCmdline, readProcStat } from './procfs.ts';
import type { WorkerPaths } from './workerPaths.ts';

/**
 * The wrapper every worker runs under. It applies the memory limit, runs the command in the foreground and writes
 * its exit status next to the logs, so the status survives the plugin thread (and the host) that started it.
 * - Catching (not ignoring) TERM/INT/HUP keeps the wrapper alive when the whole group is signalled, while the
 *   command starts with default dispositions; the trap runs after the command ends, and `$?` is its status.
 * - A stop that arrives before the command started (a worker paused right after creation) means: do not start it.
 * - It runs nothing until the plugin says `go` on its stdin, which the plugin does once the worker's meta.json is on
 *   disk: a thread (or host) killed between the spawn and that write closes the pipe, and the wrapper exits without
 *   starting the command, instead of leaving a running worker that no meta (and so no listing or terminate) can find.
 * - The shell's own stderr goes to /dev/null so its job messages ("Terminated") stay out of the worker's log; the
 *   command gets the log (fd 3) as stderr inside the subshell, which then becomes the command by `exec`.
 */
const WRAPPER = `stop=
trap 'stop=1' TERM INT HUP
IFS= read -r go; exec 0</dev/null
[ "$go" = go ] || exit 125
dir=$1; mem=$2; shift 2
exec 3>&2 2>/dev/null
if [ -n "$mem" ]; then ulimit -v "$mem" || { echo "wm: cannot set the memory limit" >&3; echo 126 > "$dir/exit"; exit 126; }; fi
if [ -z "$stop" ]; then (exec 2>&3 3>&-; exec "$@"); status=$?; else status=143; fi
echo "$status" > "$dir/exit"
exit "$status"`;

/** A started worker process: the wrapper's pid (also its process group) and its start time. */
export interface Started {
  pid: number;
  startTime: string;
}

/** A wrapper waiting for its go-ahead: `go()` once the worker is recorded, or `abandon()` to let it exit unstarted. */
export interface Launched extends Started {
  go(): void;
  abandon(): void;
}

/** What to start. */
export interface SpawnRequest {
  /** Where the logs are opened (and, unless `dir` says otherwise, where the wrapper writes `exit`). */
  paths: WorkerPaths;
  /**
   * The worker folder as it will be once the worker is recorded, where the wrapper writes `exit`: a create puts the
   * folder together elsewhere and moves it in place before the go-ahead (the open logs and the cwd move with it).
   */
  dir?: string;
  argv: readonly string[];
  env: Record<string, string>;
  cwd: string;
  memoryKiB?: number;
}

/**
 * Starts the wrapper detached, in its own session and process group, with stdout and stderr appended to the log
 * files. Nothing ties the process to the calling thread: pause, terminate and status act on the group from any
 * thread. (A worker that outlives the thread that spawned it stays a zombie entry after it exits, until the host
 * process exits; its exit status is on disk regardless.)
 */
export function spawnWrapped(req: SpawnRequest): Launched {
  const out = openSync(req.paths.stdout, 'a', 0o640);
  const err = openSync(req.paths.stderr, 'a', 0o640);
  try {
    const child = spawn('/bin/sh', ['-c', WRAPPER, 'wm-worker', req.dir ?? req.paths.dir, req.memoryKiB === undefined ? '' : String(req.memoryKiB), ...req.argv], {
      cwd: req.cwd,
      env: req.env,
      detached: true,
      stdio: ['pipe', out, err],
    });
    child.on('error', () => {});
    const stdin = child.stdin;
    stdin?.on('error', () => {});
    child.unref();
    const pid = child.pid;
    if (pid === undefined || stdin === null) throw new WorkerManagerError('WM_ERR_PROVIDER_SPECIFIC', 'could not start /bin/sh for the worker', { details: { workerDir: req.dir ?? req.paths.dir } });
    // Until this thread reaps it the child cannot vanish (at worst it is a zombie), so its stat is there.
    const stat = readProcStat(pid);
    if (stat === undefined) {
      stdin.destroy();
      throw new WorkerManagerError('WM_ERR_INTERNAL', `worker process ${pid} has no /proc entry`, { details: { pid } });
    }
    return { pid, startTime: stat.startTime, go: () => void stdin.end('go\n'), abandon: () => stdin.destroy() };
  } finally {
    closeSync(out);
    closeSync(err);
  }
}

/**
 * Waits until the command runs: the wrapper has installed its TERM trap and has a child that already exec'd the
 * command (its command line is no longer the wrapper's), or the worker has already ended. Before that, a pause and
 * terminate could land between the wrapper's fork and the command's exec, where the command would miss the SIGTERM.
 */
export async function wrapperReady(started: Started, paths: WorkerPaths, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const own = readCmdline(started.pid);
  const commandRuns = (): boolean =>
    catchesSignal(started.pid, constants.signals.SIGTERM) && childrenOf(started.pid).some((child) => readCmdline(child) !== own);
  while (isProcessAlive(started.pid, started.startTime) && !existsSync(paths.exit) && !commandRuns()) {
    if (Date.now() > deadline) return;
    await sleep(1);
  }
}
