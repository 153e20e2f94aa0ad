import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

/** Field 22 of `/proc/<pid>/stat` (start time in clock ticks), or undefined when no such process exists. */
async function startTimeOf(pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Live processes whose process group is `pgid`. */
async function groupMembersOf(pgid: number): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = await readFile(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid && fields[0] !== 'Z') out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/**
 * SIGKILLs the process group of every worker a process-provider state dir records (`workers/<id>/meta.json`): the
 * cleanup a test registers so that a test that fails halfway (or a worker that outlives its host, as process workers
 * do by design) leaves no process behind. A group is signalled only while its wrapper is the process the meta names;
 * once the wrapper is gone, only the group's members started with the worker's `WM_WORKER_ID` are, never a process
 * that merely inherited a reused pid or group id.
 */
export async function killProcessWorkers(stateDir: string): Promise<void> {
  let ids: string[];
  try {
    ids = await readdir(path.join(stateDir, 'workers'));
  } catch {
    return;
  }
  await Promise.all(
    ids.map(async (id) => {
      try {
        const meta = JSON.parse(await readFile(path.join(stateDir, 'workers', id, 'meta.json'), 'utf8')) as { pid?: unknown; startTime?: unknown };
        if (typeof meta.pid !== 'number' || meta.pid <= 1) return;
        const now = await startTimeOf(meta.pid);
        if (now !== undefined && now !== meta.startTime) return;
        if (now !== undefined) {
          process.kill(-meta.pid, 'SIGKILL');
          return;
        }
        // The wrapper is gone: its pid, and so the group id, may now lead an unrelated group (pids wrap quickly on a
        // busy machine; a test run once killed the Docker daemon that way). Only this worker's own processes go.
        for (const pid of await groupMembersOf(meta.pid)) {
          if ((await readFile(`/proc/${pid}/environ`, 'utf8').catch(() => '')).split('\0').includes(`WM_WORKER_ID=${id}`)) process.kill(pid, 'SIGKILL');
        }
      } catch {
        // No meta (not a process worker, or never created), or the group is already gone.
      }
    }),
  );
}
