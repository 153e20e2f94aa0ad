import { readdir, readFile, readlink, realpath } from 'node:fs/promises';
import path from 'node:path';

/** One process of a worker, as /proc shows it. */
export interface WorkerProcess {
  pid: number;
  /** Process group: the process provider's wrapper leads one group per worker incarnation. */
  pgid: number;
  workerId: string;
}

/**
 * Every live (not zombie) process whose working directory lies under `root` and whose environment names a worker
 * (`WM_WORKER_ID`, which the process provider sets for the wrapper and the command it runs). Read from /proc, not
 * from the provider's files: it finds what the OS actually runs, including a process its provider lost track of.
 */
export async function workerProcesses(root: string): Promise<WorkerProcess[]> {
  const base = await realpath(root);
  const out: WorkerProcess[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    try {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] === 'Z' || fields[0] === 'X') continue;
      const cwd = await readlink(`/proc/${pid}/cwd`);
      if (cwd !== base && !cwd.startsWith(base + path.sep)) continue;
      const env = (await readFile(`/proc/${pid}/environ`, 'utf8')).split('\0');
      const workerId = env.find((e) => e.startsWith('WM_WORKER_ID='))?.slice('WM_WORKER_ID='.length);
      if (workerId === undefined) continue;
      out.push({ pid, pgid: Number(fields[2]), workerId });
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return out;
}

/** Worker id to the process groups (incarnations) the OS runs for it under `root`. */
export async function workerProcessGroups(root: string): Promise<Map<string, Set<number>>> {
  const groups = new Map<string, Set<number>>();
  for (const p of await workerProcesses(root)) {
    const set = groups.get(p.workerId) ?? new Set<number>();
    set.add(p.pgid);
    groups.set(p.workerId, set);
  }
  return groups;
}

/** SIGKILLs every worker process group found under `root` (test cleanup: nothing a test started may outlive it). */
export async function killWorkerProcesses(root: string): Promise<void> {
  for (const p of await workerProcesses(root).catch(() => [])) {
    for (const target of p.pgid > 1 && p.pgid !== process.pid ? [-p.pgid, p.pid] : [p.pid]) {
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}
