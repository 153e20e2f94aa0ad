import { execFile } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { promisify } from 'node:util';
import type { Static } from 'typebox';
import type { PluginLimits } from '../../config/schema.ts';
import { hostError } from '../../errors.ts';

const run = promisify(execFile);

/** Where the tools come from: Debian's `bubblewrap` (`WM_BWRAP` overrides its path) and util-linux's `prlimit`. */
export const bwrapPath = (): string => process.env['WM_BWRAP'] ?? '/usr/bin/bwrap';
export const PRLIMIT = '/usr/bin/prlimit';

/** The unprivileged user a restricted plugin runs as, inside its user namespace (nobody). */
const SANDBOX_UID = 65_534;

/** Limits of the whole sandbox process (all its threads, heap and off-heap memory alike). */
export interface ProcessLimits {
  /** Address space of the process, in MiB: what an rlimit can bound on every Linux, cgroup v1 or v2 or none. */
  memoryMb: number;
  /** Processes and threads of the sandbox's user (RLIMIT_NPROC). */
  maxProcesses: number;
  /** Open file descriptors (RLIMIT_NOFILE). */
  maxOpenFiles: number;
  /** CPU time in percent of one core (a cgroup quota, where the host may create cgroups). */
  cpuPercent: number;
}

/**
 * The process limits of an instance: as configured, or sized from its thread limits. Address space is not memory in
 * use: measured at start, a sandbox with one thread reserves about 1.6 GiB on Node 20 and 2.0 GiB on Node 24, and each
 * further thread about 0.6 GiB, almost none of it touched. The default grants 2 GiB plus 640 MiB and the heap limit per
 * thread, and once more for the replacement of a hung or crashed thread, which starts while the old one is still
 * being torn down: without that room, on Node 24 the replacement failed to allocate and took the whole instance down
 * (out of memory instead of a thread restart).
 */
export function processLimitsOf(limits: Static<typeof PluginLimits>): ProcessLimits {
  const configured = limits.process ?? {};
  return {
    memoryMb: configured.memoryMb ?? 2_048 + (limits.threads + 1) * (640 + limits.heapMb),
    maxProcesses: configured.maxProcesses ?? 256,
    maxOpenFiles: configured.maxOpenFiles ?? 1_024,
    // A core per plugin thread: one instance cannot take the machine, and a busy thread still gets a whole core.
    cpuPercent: configured.cpuPercent ?? 100 * limits.threads,
  };
}

/** The command that starts a sandbox: prlimit, then bubblewrap, then node on the sandbox entry. */
export interface SandboxCommand {
  file: string;
  args: string[];
  /** The environment of bubblewrap itself: empty, since it is what pid 1 of the sandbox shows in /proc/1/environ. */
  env: Record<string, string>;
}

/**
 * What the sandboxed process sees and may do:
 * - new user, pid, ipc, uts, cgroup and network namespaces; uid and gid 65534; a new session (no terminal to inject
 *   into); it dies with the host;
 * - read-only: the node binary, the system's shared libraries, and the bundle folder (the sandbox entry, the plugin's
 *   bundle, a copy of its package and piscina);
 * - writable: the instance's own state folder, a private tmpfs on /tmp, and the run folder (the egress socket);
 * - its own /proc (only its own processes) and a minimal /dev;
 * - an empty environment (the plugin's granted variables reach its threads through the init frame, never argv).
 * Paths keep their host names inside, so what the plugin logs about its files means the same outside.
 */
export function bwrapCommand(options: { bundleDir: string; runDir: string; stateDir: string; entry: string; limits: ProcessLimits; node?: string }): SandboxCommand {
  const node = realpathSync(options.node ?? process.execPath);
  const libraries = ['/lib', '/lib64', '/usr/lib', '/usr/lib64'].filter((dir) => existsSync(dir));
  const args = [
    `--as=${options.limits.memoryMb * 1024 * 1024}`,
    `--nproc=${options.limits.maxProcesses}`,
    `--nofile=${options.limits.maxOpenFiles}`,
    '--core=0',
    '--',
    bwrapPath(),
    '--unshare-user', '--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-net', '--unshare-cgroup-try',
    '--uid', String(SANDBOX_UID), '--gid', String(SANDBOX_UID),
    '--die-with-parent', '--new-session', '--clearenv',
    '--hostname', 'sandbox',
    // First: the binds below may live under /tmp, and a later tmpfs would hide them.
    '--tmpfs', '/tmp',
    ...libraries.flatMap((dir) => ['--ro-bind', dir, dir]),
    '--ro-bind', node, node,
    '--ro-bind', options.bundleDir, options.bundleDir,
    '--bind', options.runDir, options.runDir,
    '--bind', options.stateDir, options.stateDir,
    '--proc', '/proc',
    '--dev', '/dev',
    '--chdir', options.stateDir,
    '--setenv', 'HOME', options.stateDir,
    '--setenv', 'TMPDIR', '/tmp',
    '--',
    node,
    // The sandbox's own main thread runs trusted code only; its heap is bounded like a plugin thread's.
    `--max-old-space-size=${256}`,
    options.entry,
  ];
  return { file: PRLIMIT, args, env: {} };
}

let support: Promise<void> | undefined;

/**
 * Fails with HOST_ERR_SANDBOX_UNAVAILABLE, naming what is missing, when this machine cannot run a restricted
 * instance: never a silent fallback to a weaker tier. Checked once per process (a real bwrap run with every namespace).
 */
export function checkSandboxSupport(): Promise<void> {
  // A failed probe is run again next time: the operator may fix the machine without restarting the host.
  support ??= probe().catch((error: unknown) => {
    support = undefined;
    throw error;
  });
  return support;
}

async function probe(): Promise<void> {
  if (process.platform !== 'linux') {
    throw hostError('HOST_ERR_SANDBOX_UNAVAILABLE', `the restricted tier needs Linux (bubblewrap and user namespaces); this host runs on ${process.platform}`);
  }
  const bwrap = bwrapPath();
  for (const tool of [bwrap, PRLIMIT]) {
    if (!existsSync(tool)) {
      throw hostError('HOST_ERR_SANDBOX_UNAVAILABLE', `the restricted tier needs ${tool} (Debian packages bubblewrap and util-linux), which is not installed`, { details: { missing: tool } });
    }
  }
  try {
    await run(bwrap, ['--unshare-user', '--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-net', '--unshare-cgroup-try', '--uid', String(SANDBOX_UID), '--ro-bind', '/', '/', '--', '/bin/true'], { timeout: 30_000, env: {} });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim() ?? (error as Error).message;
    throw hostError('HOST_ERR_SANDBOX_UNAVAILABLE', `bubblewrap cannot create the sandbox's namespaces here (are unprivileged user namespaces enabled? kernel.unprivileged_userns_clone, user.max_user_namespaces): ${stderr}`, { details: { tool: bwrap } });
  }
}

/** Forgets the probe's result (tests that change WM_BWRAP). */
export function resetSandboxSupport(): void {
  support = undefined;
}
