import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** CPU and process limits of one sandbox, set through the cgroup it runs in. */
export interface CgroupLimits {
  /** CPU time, in percent of one core, over each 100 ms period. */
  cpuPercent: number;
  /** Processes and threads (pids.max). */
  maxProcesses: number;
}

/** The cgroup of one sandbox: the files its first process writes its pid into, and removal once it has exited. */
export interface SandboxCgroup {
  /** `cgroup.procs` files to join before anything else runs (the sandbox's children inherit them). */
  procsFiles: string[];
  /** `cpu.stat` of the sandbox's CPU cgroup: nr_throttled tells that the CPU limit bit. */
  cpuStat: string;
  remove(): Promise<void>;
}

const ROOT = '/sys/fs/cgroup';
const PERIOD_US = 100_000;

/**
 * Creates a cgroup for one sandbox under the host's own, with a CPU quota and a process limit, on cgroup v2 (the
 * unified hierarchy, `cpu.max` and `pids.max`) or v1 (the `cpu` and `pids` controllers). Returns undefined, with the
 * reason, where neither can be written (no delegation to the host's user, a read-only /sys/fs/cgroup): CPU is then
 * unlimited, which the caller logs. The address space, process and file rlimits apply either way.
 */
export async function createSandboxCgroup(name: string, limits: CgroupLimits): Promise<{ cgroup?: SandboxCgroup; reason?: string }> {
  const membership = await readFile('/proc/self/cgroup', 'utf8').catch(() => '');
  const lines = membership.split('\n').filter((l) => l !== '');
  const unified = lines.find((l) => l.startsWith('0::'));
  const v1 = (controller: string): string | undefined => lines.find((l) => l.split(':')[1]?.split(',').includes(controller))?.split(':')[2];
  const quota = Math.max(1_000, Math.round((limits.cpuPercent / 100) * PERIOD_US));
  const cpuPath = v1('cpu');
  const pidsPath = v1('pids');
  if (cpuPath !== undefined) {
    const cpu = join(ROOT, 'cpu', cpuPath, name);
    const made: string[] = [];
    try {
      await mkdir(cpu);
      made.push(cpu);
      await writeFile(join(cpu, 'cpu.cfs_period_us'), String(PERIOD_US));
      await writeFile(join(cpu, 'cpu.cfs_quota_us'), String(quota));
      const procsFiles = [join(cpu, 'cgroup.procs')];
      if (pidsPath !== undefined) {
        const pids = join(ROOT, 'pids', pidsPath, name);
        try {
          await mkdir(pids);
          made.push(pids);
          await writeFile(join(pids, 'pids.max'), String(limits.maxProcesses));
          procsFiles.push(join(pids, 'cgroup.procs'));
        } catch {
          // pids is a second bound behind RLIMIT_NPROC; the CPU limit stands without it.
        }
      }
      return { cgroup: { procsFiles, cpuStat: join(cpu, 'cpu.stat'), remove: () => removeAll(made) } };
    } catch (error) {
      await removeAll(made);
      return { reason: `cgroup v1 cpu controller not writable (${(error as NodeJS.ErrnoException).code ?? String(error)})` };
    }
  }
  if (unified !== undefined) {
    const dir = join(ROOT, unified.slice(3), name);
    try {
      await mkdir(dir);
    } catch (error) {
      return { reason: `cgroup v2 not writable (${(error as NodeJS.ErrnoException).code ?? String(error)})` };
    }
    try {
      await writeFile(join(dir, 'cpu.max'), `${quota} ${PERIOD_US}`);
      await writeFile(join(dir, 'pids.max'), String(limits.maxProcesses)).catch(() => {});
      return { cgroup: { procsFiles: [join(dir, 'cgroup.procs')], cpuStat: join(dir, 'cpu.stat'), remove: () => removeAll([dir]) } };
    } catch (error) {
      await removeAll([dir]);
      // The cpu controller is not enabled for the host's cgroup's children (cgroup.subtree_control).
      return { reason: `cgroup v2 cpu controller not delegated (${(error as NodeJS.ErrnoException).code ?? String(error)})` };
    }
  }
  return { reason: 'no cgroup cpu controller found in /proc/self/cgroup' };
}

async function removeAll(dirs: readonly string[]): Promise<void> {
  // A cgroup can be removed only once its processes are gone; the caller waits for the sandbox to exit first.
  for (const dir of dirs) await rmdir(dir).catch(() => {});
}
