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

/**
 * SIGKILLs the process group of every worker a process-provider state dir records (`workers/<id>/meta.json`): the
 * cleanup a test registers so that a test that fails halfway (or a worker that outlives its host, as process workers
 * do by design) leaves no process behind. A group is signalled only while its wrapper is the process the meta names,
 * or is gone (its surviving children still carry its pid as their group id, which the kernel does not hand out
 * again while they live), never when the pid now belongs to another process.
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
        process.kill(-meta.pid, 'SIGKILL');
      } catch {
        // No meta (not a process worker, or never created), or the group is already gone.
      }
    }),
  );
}
